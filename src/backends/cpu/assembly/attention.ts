// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Causal paged attention over a ragged step (GQA, sliding window), flash-style.
 *
 * A work unit is a tile of up to TQ_MAX consecutive query tokens of one sequence x one
 * KV head x its query group (split in chunks only when the group is wider than the row
 * budget). Its rows (token, query head) share every K and V row the tile sees: each key
 * block is read (and widened to f32, for 16-bit / int8 caches) once and used by all rows,
 * each row keeping to its own causal / window bounds. Softmax is online over key blocks
 * (per row a running max m, sum l and unnormalised output O), so scratch stays the same
 * size for any context; exp is the vector one of exp.ts.
 *
 * A one-token tile (a decode, alone or in a step with prefills) makes a unit of every KV
 * head of its sequence where they fit the row budget: each block of keys is first read
 * whole in address order (touchRows), then scored and accumulated head by head from
 * cache. A head's keys alone are short reads at the row stride, which left decode waiting
 * on DRAM (at 576 positions, 0.3 ms a layer for any KV dtype, half the bytes or not; 110M
 * Q4_0 decode 1.17x faster with the pass, 1.26x with a bf16 cache).
 *
 * Scheduling: every thread walks the same list of units in order and takes a contiguous
 * run of equal cost (cost ~ keys seen x rows: late prefill tiles weigh more). When there
 * are fewer units than threads (decoding one or two sequences), each unit's keys are split
 * among several threads instead (flash-decoding): each leaves its partial (m, l, O) in its
 * scratch and the last one to finish, counted in the step's sync words, merges them.
 */
import { arg, axpy, dot, fma, hmax, hsum, rawHi, rawLo, DT_BF16, DT_F16, DT_F32 } from "./simd";
import { kvAxpy, kvDot, kvHeadBytes, kvRowBytes, kvWidenHead } from "./kv";
import { expv, exps } from "./exp";

/** Step header words (written by ../step-data.ts). */
export const ST_T = 0, ST_S = 1, ST_IDS = 2, ST_POS = 3, ST_SEQSTARTS = 4, ST_CTX = 5, ST_TABLES = 6, ST_MAXBLOCKS = 7, ST_SLOTS = 8, ST_LOGITROWS = 9, ST_R = 10, ST_TOKSEQ = 11, ST_SYNC = 12;
/** The sync words' layout: arrival counters [SYNC_THREADS] (one per split unit), then each thread's scratch pointer [SYNC_THREADS]. */
export const SYNC_THREADS = 64;

/** Argument block of attention (i32 words). */
export const AT_OUT = 0, AT_Q = 1, AT_KC = 2, AT_VC = 3, AT_STEP = 4, AT_HEADS = 5, AT_KVHEADS = 6, AT_HEADDIM = 7, AT_SCALE = 8, AT_WINDOW = 9, AT_BLOCK = 10, AT_KVDT = 11;

/** Most query tokens in a tile. */
const TQ_MAX = 8;
/** Most rows (token x query head) in a unit, and the f32 budget of O [rows, headDim] and of a widened key block [keys, headDim]. */
const ROWS_MAX = 32;
const BLOCK_FLOATS = 4096;
/** Most keys in a block (the stride of a row of scores). */
const KB_MAX = 64;
/** Fewest keys worth giving a thread of its own when a unit's keys are split. */
const MIN_SPLIT_KEYS = 32;
/** Cost of a unit beyond its keys (setup, finishing), in keys. */
const UNIT_OVERHEAD = 8;
/** Keys a block when a unit takes every KV head with one row each (MHA decode); GQA keeps gKB (64 at headDim 64): its rows share each block, more keys a softmax pass measured 3% faster. */
const KB_ALL = 32;

// scratch layout (bytes); sizes for ROWS_MAX rows and KB_MAX keys: ~41 KiB in all (64 KiB at least is given)
const SC_ROWQ: usize = 0; // [rows] q row pointer
const SC_FIRST: usize = 128; // [rows] first visible key (window)
const SC_END: usize = 256; // [rows] last visible key + 1 (causal)
const SC_LO: usize = 384; // [rows] this block's visible keys [lo, hi), block-relative
const SC_HI: usize = 512;
const SC_M: usize = 640; // [rows] running max
const SC_L: usize = 768; // [rows] running sum of exp
const SC_KROW: usize = 896; // [KB_MAX] f32 row pointer of each key (value) of the block
const SC_S: usize = 1152; // [rows, KB_MAX] scores, then probabilities
const SC_O: usize = SC_S + <usize>(ROWS_MAX * KB_MAX * 4); // [rows, headDim] unnormalised output
const SC_BUF: usize = SC_O + <usize>(BLOCK_FLOATS * 4); // [keys, headDim] the block widened to f32
const SC_TOUCH: usize = SC_BUF + <usize>(BLOCK_FLOATS * 4); // [16 bytes] touchRows' result

// the call's geometry, set by attention() (wasm globals are per instance, so per thread)
let gOut: usize = 0, gQ: usize = 0, gKc: usize = 0, gVc: usize = 0;
let gPositions: usize = 0, gTables: usize = 0;
let gDt: i32 = 0, gHd: i32 = 0, gGroup: i32 = 0, gQDim: i32 = 0, gBs: i32 = 0, gMaxBlocks: i32 = 0, gWindow: i32 = 0;
let gRowB: usize = 0, gHeadB: usize = 0;
let gScale: f32 = 0;
let gKB: i32 = 0;
/** Added to every SC_KROW pointer (runKeys: a head's offset in the rows, and V's plane from K's); 0 outside runKeys' shared walk. */
let gRowOff: usize = 0;

export function attention(tid: i32, nth: i32, scratch: usize, args: usize): void {
  const step = <usize>arg(args, AT_STEP);
  setGeometry(args, step);
  const kvHeads = arg(args, AT_KVHEADS);
  const S = arg(step, ST_S);
  const seqStarts = <usize>arg(step, ST_SEQSTARTS);
  const sync = <usize>arg(step, ST_SYNC);
  // rows of a unit: gn heads of the group x tq tokens
  const rowsMax = max(1, min(ROWS_MAX, BLOCK_FLOATS / gHd));
  const gn = min(gGroup, rowsMax);
  const chunks = (gGroup + gn - 1) / gn;
  const tq = max(1, min(TQ_MAX, rowsMax / gn));
  // KV heads a unit takes: a one-token tile (a decode) whose heads all fit one unit takes
  // every one, key block by key block, and reads each block's rows whole first (touchRows)
  const decodeKvh = chunks == 1 && kvHeads * gGroup <= rowsMax ? kvHeads : 1;
  // pass 1: how many units, and their total cost
  let units = 0;
  let total: f64 = 0;
  for (let s = 0; s < S; s++) {
    const a = load<i32>(seqStarts + (<usize>s << 2)), b = load<i32>(seqStarts + (<usize>(s + 1) << 2));
    for (let t0 = a; t0 < b; t0 += tq) {
      const nTok = min(tq, b - t0);
      units += (kvHeads / (nTok == 1 ? decodeKvh : 1)) * chunks;
      total += <f64>(tileKeys(t0, nTok) + UNIT_OVERHEAD) * <f64>(gGroup * kvHeads);
    }
  }
  const splitKeys = nth > 1 && units < nth && nth <= SYNC_THREADS && sync != 0;
  const splits = splitKeys ? nth / units : 1;
  // pass 2: the same walk; take this thread's units
  let u = 0;
  let before: f64 = 0;
  for (let s = 0; s < S; s++) {
    const a = load<i32>(seqStarts + (<usize>s << 2)), b = load<i32>(seqStarts + (<usize>(s + 1) << 2));
    const table = gTables + (<usize>(s * gMaxBlocks) << 2);
    for (let t0 = a; t0 < b; t0 += tq) {
      const nTok = min(tq, b - t0);
      const keys = tileKeys(t0, nTok);
      const unitKvh = nTok == 1 ? decodeKvh : 1;
      for (let kvh = 0; kvh < kvHeads; kvh += unitKvh) {
        for (let c = 0; c < chunks; c++) {
          const g0 = c * gn, gc = min(gn, gGroup - g0);
          if (splitKeys) {
            if (u == tid / splits) {
              runSplit(scratch, sync, tid, u, splits, t0, nTok, kvh, unitKvh, g0, gc, table);
              return;
            }
          } else {
            const cost = <f64>(keys + UNIT_OVERHEAD) * <f64>(gc * unitKvh);
            const owner = min(nth - 1, <i32>((before + 0.5 * cost) * <f64>nth / total));
            if (owner > tid) return; // owners only grow along the walk
            if (owner == tid) runUnit(scratch, t0, nTok, kvh, unitKvh, g0, gc, table);
            before += cost;
          }
          u++;
        }
      }
    }
  }
}

function setGeometry(args: usize, step: usize): void {
  gOut = <usize>arg(args, AT_OUT);
  gQ = <usize>arg(args, AT_Q);
  gKc = <usize>arg(args, AT_KC);
  gVc = <usize>arg(args, AT_VC);
  gDt = arg(args, AT_KVDT);
  gHd = arg(args, AT_HEADDIM);
  gGroup = arg(args, AT_HEADS) / arg(args, AT_KVHEADS);
  gQDim = arg(args, AT_HEADS) * gHd;
  gScale = reinterpret<f32>(arg(args, AT_SCALE));
  gWindow = arg(args, AT_WINDOW);
  gBs = arg(args, AT_BLOCK);
  gRowB = kvRowBytes(gDt, arg(args, AT_KVHEADS), gHd);
  gHeadB = kvHeadBytes(gDt, gHd);
  gPositions = <usize>arg(step, ST_POS);
  gTables = <usize>arg(step, ST_TABLES);
  gMaxBlocks = arg(step, ST_MAXBLOCKS);
  gKB = max(4, min(KB_MAX, (BLOCK_FLOATS / gHd) & ~3));
}

@inline function firstKey(pos: i32): i32 {
  return gWindow > 0 ? max(0, pos - gWindow + 1) : 0;
}

@inline function posOf(t: i32): i32 {
  return load<i32>(gPositions + (<usize>t << 2));
}

/** Keys seen by the tile's tokens, summed (its cost per row). */
function tileKeys(t0: i32, nTok: i32): i32 {
  let n = 0;
  for (let t = t0; t < t0 + nTok; t++) n += posOf(t) - firstKey(posOf(t)) + 1;
  return n;
}

/** The whole unit (KV heads [h0, h0 + nKvh)): all its keys, then its rows normalised into out. */
function runUnit(sc: usize, t0: i32, nTok: i32, h0: i32, nKvh: i32, g0: i32, gn: i32, table: usize): void {
  const rows = initRows(sc, t0, nTok, h0, nKvh, g0, gn);
  const span = keySpan(t0, nTok);
  runKeys(sc, rows / nKvh, h0, nKvh, table, <i32>(span >> 32), <i32>span);
  finish(sc, rows);
}

/**
 * Part (tid % splits) of unit u's keys; the last part to finish merges all of them.
 * Threads u * splits + p (p < parts) hold the parts. The merge reads the other parts'
 * scratch after they have left this call: the barrier after the call (never F_NOBAR)
 * keeps every thread from reusing its scratch until the merge is done.
 */
function runSplit(sc: usize, sync: usize, tid: i32, u: i32, splits: i32, t0: i32, nTok: i32, h0: i32, nKvh: i32, g0: i32, gn: i32, table: usize): void {
  const span = keySpan(t0, nTok);
  const k0 = <i32>(span >> 32), k1 = <i32>span;
  const parts = min(splits, max(1, (k1 - k0) / MIN_SPLIT_KEYS));
  const part = tid % splits;
  if (part >= parts) return;
  const rows = initRows(sc, t0, nTok, h0, nKvh, g0, gn);
  if (parts == 1) {
    runKeys(sc, rows / nKvh, h0, nKvh, table, k0, k1);
    finish(sc, rows);
    return;
  }
  const n = k1 - k0;
  runKeys(sc, rows / nKvh, h0, nKvh, table, k0 + <i32>(<i64>n * part / parts), k0 + <i32>(<i64>n * (part + 1) / parts));
  // publish: scratch pointer, then arrive; the atomic add orders the plain stores before it
  store<i32>(sync + (<usize>(SYNC_THREADS + tid) << 2), <i32>sc);
  const counter = sync + (<usize>u << 2);
  if (atomic.add<i32>(counter, 1) != parts - 1) return;
  atomic.store<i32>(counter, 0); // the last arrival: reset for the next call (after the barrier)
  merge(sc, sync, rows, u * splits, parts);
}

/** [first key, last key + 1) of a tile's tokens, packed hi:lo. */
function keySpan(t0: i32, nTok: i32): i64 {
  let lo = i32.MAX_VALUE, hi = 0;
  for (let t = t0; t < t0 + nTok; t++) {
    lo = min(lo, firstKey(posOf(t)));
    hi = max(hi, posOf(t) + 1);
  }
  return (<i64>lo << 32) | <i64>(<u32>hi);
}

/**
 * Rows r = (kvh - h0) * nTok * gn + i * gn + g (KV head kvh, token t0 + i, query head g0 + g
 * of its group; a KV head's rows are consecutive): q pointers, bounds, m = -inf, l = 0, O = 0.
 */
function initRows(sc: usize, t0: i32, nTok: i32, h0: i32, nKvh: i32, g0: i32, gn: i32): i32 {
  for (let kvh = h0; kvh < h0 + nKvh; kvh++) initKvhRows(sc, (kvh - h0) * nTok * gn, t0, nTok, kvh, g0, gn);
  const rows = nKvh * nTok * gn;
  memory.fill(sc + SC_O, 0, <usize>(rows * gHd) << 2);
  return rows;
}

function initKvhRows(sc: usize, r0: i32, t0: i32, nTok: i32, kvh: i32, g0: i32, gn: i32): void {
  for (let i = 0; i < nTok; i++) {
    const t = t0 + i;
    const pos = posOf(t);
    for (let g = 0; g < gn; g++) {
      const r = <usize>(r0 + i * gn + g) << 2;
      store<i32>(sc + SC_ROWQ + r, <i32>(gQ + (<usize>(t * gQDim + (kvh * gGroup + g0 + g) * gHd) << 2)));
      store<i32>(sc + SC_FIRST + r, firstKey(pos));
      store<i32>(sc + SC_END + r, pos + 1);
      store<f32>(sc + SC_M + r, -Infinity);
      store<f32>(sc + SC_L + r, 0);
    }
  }
}

/** Online softmax over keys [k0, k1) in blocks of gKB, each block for KV heads [h0, h0 + nKvh) in turn (`rows` rows each). */
function runKeys(sc: usize, rows: i32, h0: i32, nKvh: i32, table: usize, k0: i32, k1: i32): void {
  // one row gains nothing from widening a block first: read the cache as it is
  const raw = gDt != DT_F32 && rows == 1;
  // rows read in place: one walk of the block table a block serves every head (K and V
  // rows sit at the same offsets of their planes), each head's rows then gRowOff away
  const shared = nKvh > 1 && (raw || gDt == DT_F32);
  const vDelta = gVc - gKc;
  const kb = nKvh > 1 && rows == 1 ? min(gKB, KB_ALL) : gKB;
  for (let jb = k0; jb < k1; jb += kb) {
    const je = min(jb + kb, k1);
    if (nKvh > 1) {
      touchRows(sc, gKc, table, jb, je);
      touchRows(sc, gVc, table, jb, je);
    }
    if (shared) loadBlock(sc, gKc, 0, table, jb, je, true);
    for (let kvh = h0; kvh < h0 + nKvh; kvh++) {
      const kvOff = <usize>kvh * gHeadB;
      const r0 = (kvh - h0) * rows;
      if (shared) gRowOff = kvOff;
      else loadBlock(sc, gKc, kvOff, table, jb, je, raw);
      scoreBlock(sc, r0, r0 + rows, jb, je, raw);
      if (shared) gRowOff = kvOff + vDelta;
      else loadBlock(sc, gVc, kvOff, table, jb, je, raw);
      accumulateBlock(sc, r0, r0 + rows, raw);
    }
    gRowOff = 0;
  }
}

/**
 * Reads one value of every cache line of keys [jb, je)'s rows (all heads), in address order:
 * independent loads the core keeps many of in flight, and a sequential stream the hardware
 * prefetcher follows, where the scoring loops alone wait on one short strided read at a time.
 */
function touchRows(sc: usize, plane: usize, table: usize, jb: i32, je: i32): void {
  const bs = gBs;
  const rowB = gRowB;
  let acc = i32x4.splat(0);
  let j = jb;
  while (j < je) {
    const bi = j / bs, off = j - bi * bs;
    const n = min(je - j, bs - off); // keys of this paged block: consecutive slots, one contiguous run
    const p0 = plane + (<usize>(load<i32>(table + (<usize>bi << 2)) * bs + off)) * rowB;
    const p1 = p0 + <usize>n * rowB;
    // 16-byte loads that stay inside the run (its bytes need not be a multiple of 64), the last one at its end
    for (let p = p0; p + 16 <= p1; p += 64) acc = v128.or(acc, v128.load(p));
    if (p1 - p0 >= 16) acc = v128.or(acc, v128.load(p1 - 16));
    j += n;
  }
  v128.store(sc + SC_TOUCH, acc); // keeps the loads
}

/** Points SC_KROW at keys [jb, je) of a plane: f32 rows in place, others widened into SC_BUF (raw: in place, any dtype). */
function loadBlock(sc: usize, plane: usize, kvOff: usize, table: usize, jb: i32, je: i32, raw: bool): void {
  const bs = gBs, hd = gHd;
  const inPlace = raw || gDt == DT_F32;
  // walk the block table without a division per key (one per block)
  let bi = jb / bs, off = jb - bi * bs;
  let slot0 = load<i32>(table + (<usize>bi << 2)) * bs;
  for (let j = jb; j < je; j++) {
    if (off == bs) {
      bi++;
      off = 0;
      slot0 = load<i32>(table + (<usize>bi << 2)) * bs;
    }
    const src = plane + <usize>(slot0 + off++) * gRowB + kvOff;
    const jj = <usize>(j - jb);
    let row = src;
    if (!inPlace) {
      row = sc + SC_BUF + ((jj * <usize>hd) << 2);
      kvWidenHead(gDt, row, src, hd);
    }
    store<i32>(sc + SC_KROW + (jj << 2), <i32>row);
  }
}

@inline function krow(sc: usize, jj: i32): usize {
  return <usize>load<i32>(sc + SC_KROW + (<usize>jj << 2)) + gRowOff;
}

/** Scores of rows [r0, r1) over their visible keys of the block, folded into their running m, l and O. */
function scoreBlock(sc: usize, r0: i32, r1: i32, jb: i32, je: i32, raw: bool): void {
  for (let r = r0; r < r1; r++) {
    const ro = <usize>r << 2;
    const lo = max(jb, load<i32>(sc + SC_FIRST + ro)) - jb;
    const hi = min(je, load<i32>(sc + SC_END + ro)) - jb;
    store<i32>(sc + SC_LO + ro, lo);
    store<i32>(sc + SC_HI + ro, max(lo, hi));
  }
  // rows in pairs: the keys both see go through the 2-row kernel (each key row loaded once for two queries)
  let r = r0;
  for (; !raw && r + 2 <= r1; r += 2) {
    const lo0 = rowLo(sc, r), hi0 = rowHi(sc, r), lo1 = rowLo(sc, r + 1), hi1 = rowHi(sc, r + 1);
    const c0 = max(lo0, lo1);
    const c1 = c0 + (max(0, min(hi0, hi1) - c0) & ~3);
    if (c1 > c0) {
      scorePair(sc, r, c0, c1);
      scoreRange(sc, r, lo0, c0, false);
      scoreRange(sc, r, c1, hi0, false);
      scoreRange(sc, r + 1, lo1, c0, false);
      scoreRange(sc, r + 1, c1, hi1, false);
    } else {
      scoreRange(sc, r, lo0, hi0, false);
      scoreRange(sc, r + 1, lo1, hi1, false);
    }
    softmaxStep(sc, r, lo0, hi0);
    softmaxStep(sc, r + 1, lo1, hi1);
  }
  for (; r < r1; r++) {
    scoreRange(sc, r, rowLo(sc, r), rowHi(sc, r), raw);
    softmaxStep(sc, r, rowLo(sc, r), rowHi(sc, r));
  }
}

@inline function rowLo(sc: usize, r: i32): i32 {
  return load<i32>(sc + SC_LO + (<usize>r << 2));
}

@inline function rowHi(sc: usize, r: i32): i32 {
  return load<i32>(sc + SC_HI + (<usize>r << 2));
}

@inline function rowQ(sc: usize, r: i32): usize {
  return <usize>load<i32>(sc + SC_ROWQ + (<usize>r << 2));
}

/** Row r's scores row [KB_MAX] f32. */
@inline function rowS(sc: usize, r: i32): usize {
  return sc + SC_S + (<usize>(r * KB_MAX) << 2);
}

/** Row r's output accumulator [headDim] f32. */
@inline function rowO(sc: usize, r: i32): usize {
  return sc + SC_O + (<usize>(r * gHd) << 2);
}

/** Scores of row r over block keys [a, b) (raw: straight from the cache in its dtype). */
function scoreRange(sc: usize, r: i32, a: i32, b: i32, raw: bool): void {
  const hd = gHd;
  const q = rowQ(sc, r), sr = rowS(sc, r);
  let jj = a;
  if (raw) {
    // 16-bit caches: eight keys a pass, widened in registers; int8 a key at a time (its 8-key pass measured slower)
    if (gDt == DT_BF16) scoreRaw(DT_BF16, sc, q, sr, a, b);
    else if (gDt == DT_F16) scoreRaw(DT_F16, sc, q, sr, a, b);
    else for (; jj < b; jj++) store<f32>(sr + (<usize>jj << 2), kvDot(gDt, q, krow(sc, jj), hd) * gScale);
    return;
  }
  const scaleV = f32x4.splat(gScale);
  // eight keys a pass when the row dimension is whole vectors: eight FMA chains hide their latency
  if ((hd & 3) == 0) for (; jj + 8 <= b; jj += 8) dot8(q, sc, jj, hd, sr + (<usize>jj << 2), scaleV);
  for (; jj + 4 <= b; jj += 4) v128.store(sr + (<usize>jj << 2), f32x4.mul(dot4(q, krow(sc, jj), krow(sc, jj + 1), krow(sc, jj + 2), krow(sc, jj + 3), hd), scaleV));
  for (; jj < b; jj++) store<f32>(sr + (<usize>jj << 2), dot(q, krow(sc, jj), hd) * gScale);
}

/** Scores of one query q over block keys [a, b) read from a 16-bit cache as it is (one-row units), into sr. */
@inline function scoreRaw(dt: i32, sc: usize, q: usize, sr: usize, a: i32, b: i32): void {
  const hd = gHd;
  let jj = a;
  if ((hd & 7) == 0) for (; jj + 8 <= b; jj += 8) dot8Raw(dt, q, sc, jj, hd, sr + (<usize>jj << 2));
  for (; jj < b; jj++) store<f32>(sr + (<usize>jj << 2), kvDot(dt, q, krow(sc, jj), hd) * gScale);
}

/** out[0..8) = [q.k_jj .. q.k_jj+7] * scale, 16-bit keys widened in registers, n a multiple of 8. */
@inline function dot8Raw(dt: i32, q: usize, sc: usize, jj: i32, n: i32, out: usize): void {
  const a = krow(sc, jj), b = krow(sc, jj + 1), c = krow(sc, jj + 2), d = krow(sc, jj + 3);
  const e = krow(sc, jj + 4), f = krow(sc, jj + 5), g = krow(sc, jj + 6), h = krow(sc, jj + 7);
  let sa = f32x4.splat(0), sb = f32x4.splat(0), sc_ = f32x4.splat(0), sd = f32x4.splat(0);
  let se = f32x4.splat(0), sf = f32x4.splat(0), sg = f32x4.splat(0), sh = f32x4.splat(0);
  for (let i = 0; i < n; i += 8) {
    const o = <usize>i << 2, k = <usize>i << 1;
    const x0 = v128.load(q + o), x1 = v128.load(q + o, 16);
    sa = fma8(dt, x0, x1, a + k, sa);
    sb = fma8(dt, x0, x1, b + k, sb);
    sc_ = fma8(dt, x0, x1, c + k, sc_);
    sd = fma8(dt, x0, x1, d + k, sd);
    se = fma8(dt, x0, x1, e + k, se);
    sf = fma8(dt, x0, x1, f + k, sf);
    sg = fma8(dt, x0, x1, g + k, sg);
    sh = fma8(dt, x0, x1, h + k, sh);
  }
  const s = f32x4.splat(gScale);
  v128.store(out, f32x4.mul(sum4(sa, sb, sc_, sd), s));
  v128.store(out, f32x4.mul(sum4(se, sf, sg, sh), s), 16);
}

/** acc + x0 . (values 0..3) + x1 . (values 4..7) of the 8 16-bit values at p, widened in registers. */
@inline function fma8(dt: i32, x0: v128, x1: v128, p: usize, acc: v128): v128 {
  const k = v128.load(p);
  return fma(x1, rawHi(dt, k), fma(x0, rawLo(dt, k), acc));
}

/** O[r] += p[r, j] v_j over block keys [a, b), 16-bit values widened in registers (one-row units). */
@inline function accumulateRaw(dt: i32, sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o = rowO(sc, r), sr = rowS(sc, r);
  if ((hd & 7) != 0) {
    for (let jj = a; jj < b; jj++) kvAxpy(dt, o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), hd);
    return;
  }
  let d = 0;
  // 32 outputs a pass: eight FMA chains across the keys, as accumulateRange
  for (; d + 32 <= hd; d += 32) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    let y4 = v128.load(od, 64), y5 = v128.load(od, 80), y6 = v128.load(od, 96), y7 = v128.load(od, 112);
    for (let jj = a; jj < b; jj++) {
      const v = krow(sc, jj);
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      let k = v128.load(v + (<usize>d << 1));
      y0 = fma(p, rawLo(dt, k), y0);
      y1 = fma(p, rawHi(dt, k), y1);
      k = v128.load(v + (<usize>(d + 8) << 1));
      y2 = fma(p, rawLo(dt, k), y2);
      y3 = fma(p, rawHi(dt, k), y3);
      k = v128.load(v + (<usize>(d + 16) << 1));
      y4 = fma(p, rawLo(dt, k), y4);
      y5 = fma(p, rawHi(dt, k), y5);
      k = v128.load(v + (<usize>(d + 24) << 1));
      y6 = fma(p, rawLo(dt, k), y6);
      y7 = fma(p, rawHi(dt, k), y7);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
    v128.store(od, y4, 64);
    v128.store(od, y5, 80);
    v128.store(od, y6, 96);
    v128.store(od, y7, 112);
  }
  for (; d < hd; d += 8) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16);
    for (let jj = a; jj < b; jj++) {
      const v = krow(sc, jj);
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const k = v128.load(v + (<usize>d << 1));
      y0 = fma(p, rawLo(dt, k), y0);
      y1 = fma(p, rawHi(dt, k), y1);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
  }
}

/** Scores of rows r and r + 1 over block keys [a, b), b - a a multiple of 4. */
function scorePair(sc: usize, r: i32, a: i32, b: i32): void {
  const hd = gHd;
  const q0 = rowQ(sc, r), q1 = rowQ(sc, r + 1);
  const s0 = rowS(sc, r), s1 = rowS(sc, r + 1);
  const scaleV = f32x4.splat(gScale);
  for (let jj = a; jj < b; jj += 4) {
    const o = <usize>jj << 2;
    dot2x4(q0, q1, krow(sc, jj), krow(sc, jj + 1), krow(sc, jj + 2), krow(sc, jj + 3), hd, s0 + o, s1 + o, scaleV);
  }
}

/** out0 = [q0.a .. q0.d] * scale, out1 = [q1.a .. q1.d] * scale over n f32 values: 8 products per 6 loads. */
@inline function dot2x4(q0: usize, q1: usize, a: usize, b: usize, c: usize, d: usize, n: i32, out0: usize, out1: usize, scale: v128): void {
  let s0a = f32x4.splat(0), s0b = f32x4.splat(0), s0c = f32x4.splat(0), s0d = f32x4.splat(0);
  let s1a = f32x4.splat(0), s1b = f32x4.splat(0), s1c = f32x4.splat(0), s1d = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x0 = v128.load(q0 + o), x1 = v128.load(q1 + o);
    const ka = v128.load(a + o), kb = v128.load(b + o), kc = v128.load(c + o), kd = v128.load(d + o);
    s0a = fma(x0, ka, s0a);
    s0b = fma(x0, kb, s0b);
    s0c = fma(x0, kc, s0c);
    s0d = fma(x0, kd, s0d);
    s1a = fma(x1, ka, s1a);
    s1b = fma(x1, kb, s1b);
    s1c = fma(x1, kc, s1c);
    s1d = fma(x1, kd, s1d);
  }
  let lo = sum4(s0a, s0b, s0c, s0d), hi = sum4(s1a, s1b, s1c, s1d);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let k = f32x4.splat(load<f32>(a + o));
    k = f32x4.replace_lane(k, 1, load<f32>(b + o));
    k = f32x4.replace_lane(k, 2, load<f32>(c + o));
    k = f32x4.replace_lane(k, 3, load<f32>(d + o));
    lo = fma(f32x4.splat(load<f32>(q0 + o)), k, lo);
    hi = fma(f32x4.splat(load<f32>(q1 + o)), k, hi);
  }
  v128.store(out0, f32x4.mul(lo, scale));
  v128.store(out1, f32x4.mul(hi, scale));
}

/** [sum a, sum b, sum c, sum d] of four accumulators (transpose-add). */
@inline function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** Row r's scores [lo, hi) -> exp(s - m'), with m' = max(m, max s); l and O rescaled by exp(m - m'). */
function softmaxStep(sc: usize, r: i32, lo: i32, hi: i32): void {
  if (lo >= hi) return;
  const ro = <usize>r << 2;
  const sr = rowS(sc, r);
  let mb: f32 = -Infinity;
  let j = lo;
  if (hi - lo >= 4) {
    let mv = v128.load(sr + (<usize>j << 2));
    for (j += 4; j + 4 <= hi; j += 4) mv = f32x4.max(mv, v128.load(sr + (<usize>j << 2)));
    mb = hmax(mv);
  }
  for (; j < hi; j++) mb = max(mb, load<f32>(sr + (<usize>j << 2)));
  const mOld = load<f32>(sc + SC_M + ro);
  const mNew = max(mOld, mb);
  const mv = f32x4.splat(mNew);
  let sum = f32x4.splat(0);
  j = lo;
  for (; j + 4 <= hi; j += 4) {
    const p = expv(f32x4.sub(v128.load(sr + (<usize>j << 2)), mv));
    v128.store(sr + (<usize>j << 2), p);
    sum = f32x4.add(sum, p);
  }
  let tail: f32 = 0;
  for (; j < hi; j++) {
    const p = exps(load<f32>(sr + (<usize>j << 2)) - mNew);
    store<f32>(sr + (<usize>j << 2), p);
    tail += p;
  }
  const corr: f32 = mOld == -Infinity ? 0 : exps(mOld - mNew);
  store<f32>(sc + SC_L + ro, load<f32>(sc + SC_L + ro) * corr + hsum(sum) + tail);
  store<f32>(sc + SC_M + ro, mNew);
  if (corr != 1) scaleRow(rowO(sc, r), corr, gHd);
}

/** O[r] += sum_j p[r, j] v_j over the visible keys of the block, for rows [r0, r1). */
function accumulateBlock(sc: usize, r0: i32, r1: i32, raw: bool): void {
  let r = r0;
  for (; !raw && r + 2 <= r1; r += 2) {
    const lo0 = rowLo(sc, r), hi0 = rowHi(sc, r), lo1 = rowLo(sc, r + 1), hi1 = rowHi(sc, r + 1);
    const c0 = max(lo0, lo1), c1 = max(c0, min(hi0, hi1));
    accumulatePair(sc, r, c0, c1);
    accumulateRange(sc, r, lo0, c0);
    accumulateRange(sc, r, c1, hi0);
    accumulateRange(sc, r + 1, lo1, c0);
    accumulateRange(sc, r + 1, c1, hi1);
  }
  for (; r < r1; r++) {
    if (raw) {
      if (gDt == DT_BF16) accumulateRaw(DT_BF16, sc, r, rowLo(sc, r), rowHi(sc, r));
      else if (gDt == DT_F16) accumulateRaw(DT_F16, sc, r, rowLo(sc, r), rowHi(sc, r));
      else {
        const o = rowO(sc, r), sr = rowS(sc, r);
        for (let jj = rowLo(sc, r); jj < rowHi(sc, r); jj++) kvAxpy(gDt, o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), gHd);
      }
    } else {
      accumulateRange(sc, r, rowLo(sc, r), rowHi(sc, r));
    }
  }
}

/** O[r] += p[r, j] v_j over block keys [a, b); 16 outputs stay in registers across the keys. */
function accumulateRange(sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o = rowO(sc, r), sr = rowS(sc, r);
  let d = 0;
  // 24 outputs a pass: six FMA chains across the keys. Eight would spill: V8 loads all of a
  // pass's values before its FMAs, so accumulators + values must fit 16 registers.
  for (; d + 24 <= hd; d += 24) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    let y4 = v128.load(od, 64), y5 = v128.load(od, 80);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      y0 = fma(p, v128.load(v), y0);
      y1 = fma(p, v128.load(v, 16), y1);
      y2 = fma(p, v128.load(v, 32), y2);
      y3 = fma(p, v128.load(v, 48), y3);
      y4 = fma(p, v128.load(v, 64), y4);
      y5 = fma(p, v128.load(v, 80), y5);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
    v128.store(od, y4, 64);
    v128.store(od, y5, 80);
  }
  for (; d + 16 <= hd; d += 16) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      y0 = fma(p, v128.load(v), y0);
      y1 = fma(p, v128.load(v, 16), y1);
      y2 = fma(p, v128.load(v, 32), y2);
      y3 = fma(p, v128.load(v, 48), y3);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
  }
  if (d < hd) for (let jj = a; jj < b; jj++) axpyTail(o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), d, hd);
}

/** O[r] and O[r + 1] += their p times v_j over block keys [a, b): each value row loaded once for both. */
function accumulatePair(sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o0 = rowO(sc, r), o1 = rowO(sc, r + 1);
  const s0 = rowS(sc, r), s1 = rowS(sc, r + 1);
  let d = 0;
  for (; d + 16 <= hd; d += 16) {
    const od0 = o0 + (<usize>d << 2), od1 = o1 + (<usize>d << 2);
    let y0 = v128.load(od0), y1 = v128.load(od0, 16), y2 = v128.load(od0, 32), y3 = v128.load(od0, 48);
    let z0 = v128.load(od1), z1 = v128.load(od1, 16), z2 = v128.load(od1, 32), z3 = v128.load(od1, 48);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(s0 + (<usize>jj << 2));
      const q = v128.load32_splat(s1 + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      const v0 = v128.load(v), v1 = v128.load(v, 16), v2 = v128.load(v, 32), v3 = v128.load(v, 48);
      y0 = fma(p, v0, y0);
      y1 = fma(p, v1, y1);
      y2 = fma(p, v2, y2);
      y3 = fma(p, v3, y3);
      z0 = fma(q, v0, z0);
      z1 = fma(q, v1, z1);
      z2 = fma(q, v2, z2);
      z3 = fma(q, v3, z3);
    }
    v128.store(od0, y0);
    v128.store(od0, y1, 16);
    v128.store(od0, y2, 32);
    v128.store(od0, y3, 48);
    v128.store(od1, z0);
    v128.store(od1, z1, 16);
    v128.store(od1, z2, 32);
    v128.store(od1, z3, 48);
  }
  if (d < hd) {
    for (let jj = a; jj < b; jj++) {
      axpyTail(o0, load<f32>(s0 + (<usize>jj << 2)), krow(sc, jj), d, hd);
      axpyTail(o1, load<f32>(s1 + (<usize>jj << 2)), krow(sc, jj), d, hd);
    }
  }
}

/** y[i] += p x[i] for i in [d, n) (the part of a row past its 16-value chunks). */
@inline function axpyTail(y: usize, p: f32, x: usize, d: i32, n: i32): void {
  const pv = f32x4.splat(p);
  let i = d;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), fma(pv, v128.load(x + (<usize>i << 2)), v128.load(y + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) + p * load<f32>(x + (<usize>i << 2)));
}

/** out[0..8) = [q.k_jj .. q.k_jj+7] * scale over n f32 values, n a multiple of 4: eight keys against one query. */
@inline function dot8(q: usize, sc: usize, jj: i32, n: i32, out: usize, scale: v128): void {
  const a = krow(sc, jj), b = krow(sc, jj + 1), c = krow(sc, jj + 2), d = krow(sc, jj + 3);
  const e = krow(sc, jj + 4), f = krow(sc, jj + 5), g = krow(sc, jj + 6), h = krow(sc, jj + 7);
  let sa = f32x4.splat(0), sb = f32x4.splat(0), sc_ = f32x4.splat(0), sd = f32x4.splat(0);
  let se = f32x4.splat(0), sf = f32x4.splat(0), sg = f32x4.splat(0), sh = f32x4.splat(0);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(q + o);
    sa = fma(x, v128.load(a + o), sa);
    sb = fma(x, v128.load(b + o), sb);
    sc_ = fma(x, v128.load(c + o), sc_);
    sd = fma(x, v128.load(d + o), sd);
    se = fma(x, v128.load(e + o), se);
    sf = fma(x, v128.load(f + o), sf);
    sg = fma(x, v128.load(g + o), sg);
    sh = fma(x, v128.load(h + o), sh);
  }
  v128.store(out, f32x4.mul(sum4(sa, sb, sc_, sd), scale));
  v128.store(out, f32x4.mul(sum4(se, sf, sg, sh), scale), 16);
}

/** [q.a, q.b, q.c, q.d] over n f32 values: four keys against one query, one pass over q. */
@inline function dot4(q: usize, a: usize, b: usize, c: usize, d: usize, n: i32): v128 {
  let sa = f32x4.splat(0), sb = f32x4.splat(0), sc = f32x4.splat(0), sd = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(q + o);
    sa = fma(x, v128.load(a + o), sa);
    sb = fma(x, v128.load(b + o), sb);
    sc = fma(x, v128.load(c + o), sc);
    sd = fma(x, v128.load(d + o), sd);
  }
  let s = sum4(sa, sb, sc, sd);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = f32x4.splat(load<f32>(q + o));
    let k = f32x4.splat(load<f32>(a + o));
    k = f32x4.replace_lane(k, 1, load<f32>(b + o));
    k = f32x4.replace_lane(k, 2, load<f32>(c + o));
    k = f32x4.replace_lane(k, 3, load<f32>(d + o));
    s = fma(x, k, s);
  }
  return s;
}

/** y[i] *= a over n f32 values. */
function scaleRow(y: usize, a: f32, n: i32): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), f32x4.mul(v128.load(y + (<usize>i << 2)), av));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) * a);
}

/** out row of row r: where its q row is, in out. */
@inline function outRow(sc: usize, r: i32): usize {
  return gOut + (<usize>load<i32>(sc + SC_ROWQ + (<usize>r << 2)) - gQ);
}

/** out[r] = O[r] / l[r] for every row. */
function finish(sc: usize, rows: i32): void {
  const hd = gHd;
  for (let r = 0; r < rows; r++) {
    const o = outRow(sc, r);
    memory.copy(o, sc + SC_O + (<usize>(r * hd) << 2), <usize>hd << 2);
    scaleRow(o, <f32>1 / load<f32>(sc + SC_L + (<usize>r << 2)), hd);
  }
}

/**
 * Merges the partials of threads first .. first + parts - 1 (scratch pointers in the sync
 * words): per row M = max m_p, out = sum_p e^(m_p - M) O_p / sum_p e^(m_p - M) l_p.
 * A part whose keys a row does not see has m = -inf and weight 0.
 */
function merge(sc: usize, sync: usize, rows: i32, first: i32, parts: i32): void {
  const hd = gHd;
  for (let r = 0; r < rows; r++) {
    const ro = <usize>r << 2;
    let m: f32 = -Infinity;
    for (let p = 0; p < parts; p++) m = max(m, load<f32>(partScratch(sync, first + p) + SC_M + ro));
    const o = outRow(sc, r);
    memory.fill(o, 0, <usize>hd << 2);
    let l: f32 = 0;
    for (let p = 0; p < parts; p++) {
      const ps = partScratch(sync, first + p);
      const mp = load<f32>(ps + SC_M + ro);
      if (mp == -Infinity) continue;
      const w = exps(mp - m);
      l += w * load<f32>(ps + SC_L + ro);
      axpy(o, w, ps + SC_O + (<usize>(r * hd) << 2), hd);
    }
    scaleRow(o, <f32>1 / l, hd);
  }
}

@inline function partScratch(sync: usize, tid: i32): usize {
  return <usize>load<i32>(sync + (<usize>(SYNC_THREADS + tid) << 2));
}

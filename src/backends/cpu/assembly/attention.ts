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
 *
 * Files: this one holds the entry, the call's geometry (per-thread globals) and the
 * scheduling: units and splits, the walk over key blocks (touchRows, loadBlock), finishing
 * and merging. attention-scratch.ts: the scratch layout and row accessors; attn-scores.ts:
 * the q.k score kernels and the online softmax step; attention-values.ts: the p.v kernels.
 */
import { arg, axpy, DT_F32 } from "./simd";
import { kvHeadBytes, kvRowBytes, kvWidenHead } from "./kv";
import { exps } from "./exp";
import { BLOCK_FLOATS, KB_MAX, ROWS_MAX, SC_BUF, SC_END, SC_FIRST, SC_KROW, SC_L, SC_M, SC_O, SC_ROWQ, SC_TOUCH, outRow, partScratch } from "./attention-scratch";
import { scoreBlock } from "./attn-scores";
import { accumulateBlock, scaleRow } from "./attention-values";

/** Step header words (written by ../step-data.ts). */
export const ST_T = 0, ST_S = 1, ST_IDS = 2, ST_POS = 3, ST_SEQSTARTS = 4, ST_CTX = 5, ST_TABLES = 6, ST_MAXBLOCKS = 7, ST_SLOTS = 8, ST_LOGITROWS = 9, ST_R = 10, ST_TOKSEQ = 11, ST_SYNC = 12;
/** The sync words' layout: arrival counters [SYNC_THREADS] (one per split unit), then each thread's scratch pointer [SYNC_THREADS]. */
export const SYNC_THREADS = 64;

/** Argument block of attention (i32 words). */
export const AT_OUT = 0, AT_Q = 1, AT_KC = 2, AT_VC = 3, AT_STEP = 4, AT_HEADS = 5, AT_KVHEADS = 6, AT_HEADDIM = 7, AT_SCALE = 8, AT_WINDOW = 9, AT_BLOCK = 10, AT_KVDT = 11, AT_SKIP = 12;

/** Most query tokens in a tile. */
const TQ_MAX = 8;
/**
 * The same where the cache is not f32: a tile widens every key and value it reads (no f16
 * conversion instruction in WebAssembly), so a prefill widens each about prompt / (2 tq) times,
 * and wider tiles widen less (as many rows as the scratch holds, ROWS_MAX).
 */
const TQ_MAX_WIDENED = 32;
/** Fewest keys worth giving a thread of its own when a unit's keys are split. */
const MIN_SPLIT_KEYS = 32;
/** Cost of a unit beyond its keys (setup, finishing), in keys. */
const UNIT_OVERHEAD = 8;
/** Keys a block when a unit takes every KV head with one row each (MHA decode); GQA keeps gKB (64 at headDim 64): its rows share each block, more keys a softmax pass measured 3% faster. */
const KB_ALL = 32;

// the call's geometry, set by attention() (wasm globals are per instance, so per thread)
// (written here only: attention-scratch.ts and the kernel files import what they read)
export let gOut: usize = 0, gQ: usize = 0, gKc: usize = 0, gVc: usize = 0;
let gPositions: usize = 0, gTables: usize = 0;
export let gDt: i32 = 0, gHd: i32 = 0, gGroup: i32 = 0, gQDim: i32 = 0, gBs: i32 = 0, gMaxBlocks: i32 = 0, gWindow: i32 = 0;
let gRowB: usize = 0, gHeadB: usize = 0;
export let gScale: f32 = 0;
let gKB: i32 = 0;
/** Added to every SC_KROW pointer (runKeys: a head's offset in the rows, and V's plane from K's); 0 outside runKeys' shared walk. */
export let gRowOff: usize = 0;

export function attention(tid: i32, nth: i32, scratch: usize, args: usize): void {
  const step = <usize>arg(args, AT_STEP);
  setGeometry(args, step);
  const kvHeads = arg(args, AT_KVHEADS);
  const S = arg(step, ST_S);
  const seqStarts = <usize>arg(step, ST_SEQSTARTS);
  const sync = <usize>arg(step, ST_SYNC);
  // sequences of this many tokens or more are another kernel's (../blas-attention.ts); 0: none
  const skip = arg(args, AT_SKIP);
  // rows of a unit: gn heads of the group x tq tokens
  const rowsMax = max(1, min(ROWS_MAX, BLOCK_FLOATS / gHd));
  const gn = min(gGroup, rowsMax);
  const chunks = (gGroup + gn - 1) / gn;
  const tq = max(1, min(gDt == DT_F32 ? TQ_MAX : TQ_MAX_WIDENED, rowsMax / gn));
  // KV heads a unit takes: a one-token tile (a decode) whose heads all fit one unit takes
  // every one, key block by key block, and reads each block's rows whole first (touchRows)
  const decodeKvh = chunks == 1 && kvHeads * gGroup <= rowsMax ? kvHeads : 1;
  // pass 1: how many units, and their total cost
  let units = 0;
  let total: f64 = 0;
  for (let s = 0; s < S; s++) {
    const a = load<i32>(seqStarts + (<usize>s << 2)), b = load<i32>(seqStarts + (<usize>(s + 1) << 2));
    if (skip > 0 && b - a >= skip) continue;
    for (let t0 = a; t0 < b; t0 += tq) {
      const nTok = min(tq, b - t0);
      units += (kvHeads / (nTok == 1 ? decodeKvh : 1)) * chunks;
      total += <f64>(tileKeys(t0, nTok) + UNIT_OVERHEAD) * <f64>(gGroup * kvHeads);
    }
  }
  if (units == 0) return; // every sequence skipped
  const splitKeys = nth > 1 && units < nth && nth <= SYNC_THREADS && sync != 0;
  const splits = splitKeys ? nth / units : 1;
  // pass 2: the same walk; take this thread's units
  let u = 0;
  let before: f64 = 0;
  for (let s = 0; s < S; s++) {
    const a = load<i32>(seqStarts + (<usize>s << 2)), b = load<i32>(seqStarts + (<usize>(s + 1) << 2));
    if (skip > 0 && b - a >= skip) continue;
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

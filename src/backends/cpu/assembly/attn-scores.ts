// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Attention's q.k side (attention.ts): a key block's scores for a unit's rows, one row at a
 * time (eight or four keys a pass; 16-bit caches read as they are) or two rows sharing each
 * key load, and the online softmax step that turns a row's scores into probabilities.
 * (Named attn-scores, not attention-scores: binaryen orders functions of equal call counts
 * by name, and with this name the module keeps the function order, hence the bytes, it had
 * as one file.)
 */
import { dot, fma, hmax, hsum, rawHi, rawLo, DT_BF16, DT_F16 } from "./simd";
import { kvDot } from "./kv";
import { expv, exps } from "./exp";
import { SC_END, SC_FIRST, SC_HI, SC_L, SC_LO, SC_M, krow, rowHi, rowLo, rowO, rowQ, rowS } from "./attention-scratch";
import { gDt, gHd, gScale } from "./attention";
import { scaleRow } from "./attention-values";

/** Scores of rows [r0, r1) over their visible keys of the block, folded into their running m, l and O. */
export function scoreBlock(sc: usize, r0: i32, r1: i32, jb: i32, je: i32, raw: bool): void {
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

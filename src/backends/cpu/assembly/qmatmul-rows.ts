// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Packed int8 / int4 decode by row blocks (qmatmul.ts), the default for few tokens: each
 * token quantized to int16 once, then 4 rows at a time against it, integer dots per
 * 32-column chunk, one copy of the loop per format (matmulRows8 / matmulRows4); zeroTerm and
 * hsum4 are shared with qmatmul8.ts.
 */
import { activeThreads, fma, hsum, shareStart } from "./simd";
import { absMax, chunkStride, padK, rowAt, stripedAt, tokBytes, DT_Q4, DT_Q8, SEG } from "./qmatmul";

// The quantized token (scratch): f32 scale, 12 pad bytes, int16 X [padK(K)] (|X| <= 32767),
// then (int4) f32 sums of X per group. int8: X in column order; int4: each 32 columns as 4
// stripes (column 4i + s at 8s + i), the order in which nibbles come out of 16-bit lanes.

/** w8a8's token scale and rounding, as src/quant/w8a8.ts: s = max|x| / 127, q = round(x / s) half up in f64, within +-127. */
@inline function scaleI8(amax: f32): f32 {
  return amax / 127;
}
@inline function roundI8(x: f32, s: f32): f64 {
  return min(127.0, max(-127.0, floor(<f64>x / <f64>s + 0.5)));
}

/**
 * x row [K] -> X at dst + 16 in the layout of dt, scale at dst; int4: per group sums of X (f32) after X.
 * act8 (w8a8, int8 only): X = round(x / s) with s = max|x| / 127, as src/quant/w8a8.ts
 * quantizes (the division and the rounding half up in f64), so the integer sums are its own.
 */
function quantizeTok(dst: usize, x: usize, K: i32, dt: i32, G: i32, act8: bool = false): void {
  const amax = absMax(x, K);
  let k = 0;
  const q = dst + 16;
  const Kp = padK(K);
  if (act8) {
    const s = scaleI8(amax);
    store<f32>(dst, s);
    for (k = 0; k < Kp; k++) store<i16>(q + (<usize>k << 1), <i16>(k < K && s > 0 ? <i32>roundI8(load<f32>(x + (<usize>k << 2)), s) : 0));
    return;
  }
  const inv: f32 = amax > 0 ? <f32>32767 / amax : 0;
  store<f32>(dst, amax / 32767);
  if (dt == DT_Q8) {
    for (k = 0; k < Kp; k++) store<i16>(q + (<usize>k << 1), <i16>(k < K ? <i32>nearest(load<f32>(x + (<usize>k << 2)) * inv) : 0));
    return;
  }
  const L = q + (<usize>Kp << 1);
  const gs = G >= K ? Kp : G;
  for (let g0 = 0, g = 0; g0 < Kp; g0 += gs, g++) {
    const g1 = min(g0 + gs, Kp);
    let sum = 0;
    for (k = g0; k < g1; k++) {
      const v: i32 = k < K ? <i32>nearest(load<f32>(x + (<usize>k << 2)) * inv) : 0;
      store<i16>(q + (<usize>stripedAt(k) << 1), <i16>v);
      sum += v;
    }
    store<f32>(L + (<usize>g << 2), <f32>sum);
  }
}

/**
 * This thread's share of rows: dst [M, K] = x on its per-token int8 grid, q * s with
 * s = max|x| / 127 and q rounded as quantizeTok's act8 rounds (w8a8's BLAS prefill: sgemm
 * then sums the products the integer kernel does). Two lanes of f64 a step: the same
 * division and rounding as the scalar reference.
 */
export function quantRowsI8Share(tid: i32, nth: i32, dst: usize, x: usize, M: i32, K: i32): void {
  const act = activeThreads(M, nth, max(1, (1 << 14) / max(1, K)));
  const m0 = shareStart(M, tid, act, 1);
  const m1 = shareStart(M, tid + 1, act, 1);
  for (let m = m0; m < m1; m++) {
    const xr = x + ((<usize>m * <usize>K) << 2);
    const dr = dst + ((<usize>m * <usize>K) << 2);
    const s = scaleI8(absMax(xr, K));
    const sv = f64x2.splat(<f64>s), half = f64x2.splat(0.5), hi = f64x2.splat(127), lo = f64x2.splat(-127);
    let k = 0;
    if (s > 0) {
      for (; k + 4 <= K; k += 4) {
        const v = v128.load(xr + (<usize>k << 2));
        const a = f64x2.max(lo, f64x2.min(hi, f64x2.floor(f64x2.add(f64x2.div(f64x2.promote_low_f32x4(v), sv), half))));
        const b = f64x2.max(lo, f64x2.min(hi, f64x2.floor(f64x2.add(f64x2.div(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), sv), half))));
        const ra = f32x4.demote_f64x2_zero(f64x2.mul(a, sv));
        const rb = f32x4.demote_f64x2_zero(f64x2.mul(b, sv));
        v128.store(dr + (<usize>k << 2), v128.shuffle<f32>(ra, rb, 0, 1, 4, 5));
      }
    }
    for (; k < K; k++) store<f32>(dr + (<usize>k << 2), s > 0 ? <f32>(roundI8(load<f32>(xr + (<usize>k << 2)), s) * <f64>s) : 0);
  }
}

/** 32 int8 columns (w) against X at xo, sign-extended to 16-bit lanes. */
@inline function chunk8(w: usize, xo: usize): v128 {
  const q0 = v128.load(w), q1 = v128.load(w, 16);
  const a = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q0), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q0), v128.load(xo, 16)));
  const b = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q1), v128.load(xo, 32)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q1), v128.load(xo, 48)));
  return i32x4.add(a, b);
}

/** 32 int4 columns (16 bytes at w) against striped X at xo: nibbles s = 0, 1, 2 masked in place (x1, x16, x256), s = 3 shifted down; zero point not applied. */
@inline function chunk4(w: usize, xo: usize): v128 {
  const v = v128.load(w);
  const a = i32x4.add(i32x4.dot_i16x8_s(v128.and(v, i16x8.splat(0x000f)), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), v128.load(xo, 48)));
  const b = i32x4.add(i32x4.shr_s(i32x4.dot_i16x8_s(v128.and(v, i16x8.splat(0x00f0)), v128.load(xo, 16)), 4), i32x4.shr_s(i32x4.dot_i16x8_s(v128.and(v, i16x8.splat(0x0f00)), v128.load(xo, 32)), 8));
  return i32x4.add(a, b);
}

/** A 32-column chunk of row w (chunk address wc) against the quantized token's chunk at xo. */
@inline function chunkD(dt: i32, wc: usize, xo: usize): v128 {
  return dt == DT_Q8 ? chunk8(wc, xo) : chunk4(wc, xo);
}

/** [sum a, sum b, sum c, sum d] */
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/**
 * 4 rows against one quantized token (xq): chunk c of row r at w + r * rs + c * cs. Sum over
 * segments (a group, or up to SEG columns of one group per row) of scale * (i32 sum of the
 * segment's chunks), before the zero point and the token scale. sc: the first row's scales, NG per row.
 */
@inline function dot4(dt: i32, w: usize, rs: usize, cs: usize, sc: usize, NG: i32, G: i32, segC: i32, Kp: i32, xq: usize): v128 {
  const sb = <usize>NG << 2;
  const r2 = 2 * rs, r3 = 3 * rs;
  if (segC == 32) {
    // one chunk per group (Q8_0 / Q4_0): scaled per chunk
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let wc = w, s = sc;
    const xe = xq + (<usize>Kp << 1);
    for (let xo = xq; xo < xe; xo += 64) {
      a0 = fma(f32x4.convert_i32x4_s(chunkD(dt, wc, xo)), f32x4.splat(load<f32>(s)), a0);
      a1 = fma(f32x4.convert_i32x4_s(chunkD(dt, wc + rs, xo)), f32x4.splat(load<f32>(s + sb)), a1);
      a2 = fma(f32x4.convert_i32x4_s(chunkD(dt, wc + r2, xo)), f32x4.splat(load<f32>(s + 2 * sb)), a2);
      a3 = fma(f32x4.convert_i32x4_s(chunkD(dt, wc + r3, xo)), f32x4.splat(load<f32>(s + 3 * sb)), a3);
      wc += cs;
      s += 4;
    }
    return hsum4(a0, a1, a2, a3);
  }
  let acc = f32x4.splat(0);
  let wc = w;
  for (let k0 = 0; k0 < Kp; k0 += segC) {
    const xe = xq + (<usize>min(k0 + segC, Kp) << 1);
    let d0 = i32x4.splat(0), d1 = i32x4.splat(0), d2 = i32x4.splat(0), d3 = i32x4.splat(0);
    for (let xo = xq + (<usize>k0 << 1); xo < xe; xo += 64) {
      d0 = i32x4.add(d0, chunkD(dt, wc, xo));
      d1 = i32x4.add(d1, chunkD(dt, wc + rs, xo));
      d2 = i32x4.add(d2, chunkD(dt, wc + r2, xo));
      d3 = i32x4.add(d3, chunkD(dt, wc + r3, xo));
      wc += cs;
    }
    // the 4 rows' segment sums side by side, then one scaling
    const s = sc + (<usize>(k0 / G) << 2);
    const sv = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(v128.load32_zero(s), 1, load<f32>(s + sb)), 2, load<f32>(s + 2 * sb)), 3, load<f32>(s + 3 * sb));
    acc = fma(hsum4(f32x4.convert_i32x4_s(d0), f32x4.convert_i32x4_s(d1), f32x4.convert_i32x4_s(d2), f32x4.convert_i32x4_s(d3)), sv, acc);
  }
  return acc;
}

/** One row (the rows past the last block of 4): chunk c at w + c * cs. */
@inline function dot1(dt: i32, w: usize, cs: usize, sc: usize, G: i32, segC: i32, Kp: i32, xq: usize): f32 {
  let a = f32x4.splat(0);
  let wc = w;
  for (let k0 = 0; k0 < Kp; k0 += segC) {
    const xe = xq + (<usize>min(k0 + segC, Kp) << 1);
    let d = i32x4.splat(0);
    for (let xo = xq + (<usize>k0 << 1); xo < xe; xo += 64) {
      d = i32x4.add(d, chunkD(dt, wc, xo));
      wc += cs;
    }
    a = fma(f32x4.convert_i32x4_s(d), v128.load32_splat(sc + (<usize>(k0 / G) << 2)), a);
  }
  return hsum(a);
}

/** int4: sum over groups of scale * zero * (sum of X over the group), the zero point's share (zeros 0: 8). */
@inline export function zeroTerm(sc: usize, zr: usize, NL: i32, L: usize): f32 {
  let acc = f32x4.splat(0);
  let g = 0;
  if (zr) {
    for (; g + 4 <= NL; g += 4) {
      const z = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(zr + <usize>g))));
      acc = fma(f32x4.mul(v128.load(sc + (<usize>g << 2)), z), v128.load(L + (<usize>g << 2)), acc);
    }
  } else {
    for (; g + 4 <= NL; g += 4) acc = fma(v128.load(sc + (<usize>g << 2)), v128.load(L + (<usize>g << 2)), acc);
    acc = f32x4.mul(acc, f32x4.splat(8));
  }
  let s = hsum(acc);
  for (; g < NL; g++) {
    const z: f32 = zr ? <f32>load<u8>(zr + <usize>g) : 8;
    s += load<f32>(sc + (<usize>g << 2)) * z * load<f32>(L + (<usize>g << 2));
  }
  return s;
}

/** zeroTerm of 4 consecutive rows (scales sb bytes apart; zero points NG apart, or none), one a lane. */
@inline export function zeroTerms4(sc: usize, sb: usize, zr: usize, NG: i32, L: usize): v128 {
  const z = f32x4.splat(zeroTerm(sc, zr, NG, L));
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(z, 1, zeroTerm(sc + sb, zr ? zr + <usize>NG : 0, NG, L)), 2, zeroTerm(sc + 2 * sb, zr ? zr + 2 * <usize>NG : 0, NG, L)), 3, zeroTerm(sc + 3 * sb, zr ? zr + 3 * <usize>NG : 0, NG, L));
}

/** Few tokens, groups rowBlocked: blocks of 4 rows against each quantized token (dt a constant: one copy per format). */
@inline function matmulRows(dt: i32, il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, act8: bool = false): void {
  const tb = tokBytes(K);
  const Kp = padK(K);
  const NG = (K + G - 1) / G;
  const segC = G >= K ? SEG : G;
  const cs = chunkStride(dt, il);
  // from one row of a block to the next
  const rs: usize = il ? (dt != DT_Q4 ? 32 : 16) : dt != DT_Q4 ? <usize>K : <usize>((K + 1) >> 1);
  const sb = <usize>NG << 2;
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K, dt, G, act8);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const w = rowAt(dt, il, q, K, n);
      const sc = scales + <usize>n * sb;
      const b = bias ? v128.load(bias + (<usize>n << 2)) : f32x4.splat(0);
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        let d = dot4(dt, w, rs, cs, sc, NG, G, segC, Kp, xt + 16);
        if (dt == DT_Q4) {
          const L = xt + 16 + (<usize>Kp << 1);
          const zr = zeros ? zeros + <usize>n * <usize>NG : 0;
          const z = zeroTerms4(sc, sb, zr, NG, L);
          d = f32x4.sub(d, z);
        }
        v128.store(out + ((<usize>t * <usize>N + <usize>n) << 2), fma(d, v128.load32_splat(xt), b));
      }
    }
    for (; n < n1; n++) {
      const w = rowAt(dt, il, q, K, n);
      const sc = scales + <usize>n * sb;
      const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        let d = dot1(dt, w, cs, sc, G, segC, Kp, xt + 16);
        if (dt == DT_Q4) d -= zeroTerm(sc, zeros ? zeros + <usize>n * <usize>NG : 0, NG, xt + 16 + (<usize>Kp << 1));
        store<f32>(out + ((<usize>t * <usize>N + <usize>n) << 2), d * load<f32>(xt) + b);
      }
    }
  }
}

export function matmulRows8(il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRows(DT_Q8, il, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
}
/** w8a8: int8 weights per channel against int8 tokens (quantizeTok act8). */
export function matmulRowsW8A8(il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRows(DT_Q8, il, scratch, scratchBytes, out, x, q, scales, 0, G, bias, T, K, N, n0, n1, true);
}
export function matmulRows4(il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRows(DT_Q4, il, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
}

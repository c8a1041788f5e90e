// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Packed int4 decoded on the relaxed build with 8-bit activations, as llama.cpp's Q8_0
 * activations: each 32-column chunk's nibbles (0..15) are the 7-bit unsigned operand of
 * i16x8.relaxed_dot_i8x16_i7x16_s (one pmaddubsw per 16 weights on x86), pair sums added in 16
 * bits and widened once. Two layouts: the lanes one (DT_Q4L, groups of a multiple of 32, the
 * default packed.ts places here; below) and the interleaved one (groups of 32, qmatmul.ts).
 */
import { fma, hsum } from "./simd";
import { DT_Q4, padK, rowAt, tokBytes } from "./qmatmul";
import { hsum4, zeroTerm, zeroTerms4 } from "./qmatmul-rows";

// The quantized token (scratch): per 32-column chunk c, int8 X at 32c (its 16 even columns,
// then its 16 odd ones: the low and high nibbles of a weight chunk's 16 bytes), then the
// chunks' scales xs [Kp / 32] f32 (max|x| of the chunk / 127, as llama.cpp's Q8_0 activations),
// then xs_c * sum X over the chunk [Kp / 32] f32 (the zero points' share, one group per chunk),
// then sum X over the chunk [Kp / 32] i32 (the same share in integers, for DT_Q4L).

/** x row [K] -> the 8-bit token at dst (layout above). */
function quantizeTok8(dst: usize, x: usize, K: i32): void {
  const Kp = padK(K);
  const S = dst + <usize>Kp, L = S + (<usize>Kp >> 3), SX = L + (<usize>Kp >> 3);
  for (let c = 0; c < Kp; c += 32) {
    const e = min(c + 32, K);
    let m: f32 = 0;
    for (let k = c; k < e; k++) m = max(m, abs(load<f32>(x + (<usize>k << 2))));
    const inv: f32 = m > 0 ? <f32>127 / m : 0;
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const v: i32 = c + j < e ? <i32>nearest(load<f32>(x + (<usize>(c + j) << 2)) * inv) : 0;
      store<i8>(dst + <usize>c + (<usize>(j & 1) << 4) + (<usize>j >> 1), <i8>v);
      sum += v;
    }
    store<f32>(S + (<usize>c >> 3), m / 127);
    store<f32>(L + (<usize>c >> 3), (m / 127) * <f32>sum);
    store<i32>(SX + (<usize>c >> 3), sum);
  }
}

/**
 * X . u over one 32-column chunk (16 bytes of nibbles at w, X at xo): each nibble (0..15) is
 * the 7-bit unsigned operand of i16x8.relaxed_dot_i8x16_i7x16_s (one pmaddubsw on x86), the
 * pair sums (|.| <= 4 * 15 * 127) added in 16 bits, then widened pairwise to i32.
 */
@inline function chunk4R(w: usize, xo: usize, m: v128): v128 {
  const v = v128.load(w);
  const p = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), v128.and(v, m)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 16), v128.and(i16x8.shr_u(v, 4), m)));
  return i32x4.extadd_pairwise_i16x8_s(p);
}

/** 4 rows (interleaved layout: row r of a chunk at w + 16 r) against an 8-bit token: sum over chunks of scale * xs_c * (X . u), before the zero point. */
@inline function dot4R(w: usize, sc: usize, NG: i32, Kp: i32, xq: usize): v128 {
  const sb = <usize>NG << 2;
  const m = i8x16.splat(0x0f);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let wc = w, s = sc;
  const S = xq + <usize>Kp;
  for (let c = 0; c < Kp; c += 32) {
    const xo = xq + <usize>c;
    const xs = v128.load32_splat(S + (<usize>c >> 3));
    a0 = fma(f32x4.mul(f32x4.convert_i32x4_s(chunk4R(wc, xo, m)), xs), v128.load32_splat(s), a0);
    a1 = fma(f32x4.mul(f32x4.convert_i32x4_s(chunk4R(wc + 16, xo, m)), xs), v128.load32_splat(s + sb), a1);
    a2 = fma(f32x4.mul(f32x4.convert_i32x4_s(chunk4R(wc + 32, xo, m)), xs), v128.load32_splat(s + 2 * sb), a2);
    a3 = fma(f32x4.mul(f32x4.convert_i32x4_s(chunk4R(wc + 48, xo, m)), xs), v128.load32_splat(s + 3 * sb), a3);
    wc += 64;
    s += 4;
  }
  return hsum4(a0, a1, a2, a3);
}

/** One row (past the last block of 4; chunk c at w + 64 c) against an 8-bit token. */
@inline function dot1R(w: usize, sc: usize, Kp: i32, xq: usize): f32 {
  const m = i8x16.splat(0x0f);
  let a = f32x4.splat(0);
  let wc = w, s = sc;
  const S = xq + <usize>Kp;
  for (let c = 0; c < Kp; c += 32) {
    a = fma(f32x4.mul(f32x4.convert_i32x4_s(chunk4R(wc, xq + <usize>c, m)), v128.load32_splat(S + (<usize>c >> 3))), v128.load32_splat(s), a);
    wc += 64;
    s += 4;
  }
  return hsum(a);
}

/** Few tokens, int4 in groups of 32 in the interleaved layout, relaxed SIMD: blocks of 4 rows against 8-bit tokens. */
export function matmulRows4R(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  const Kp = padK(K);
  const NG = Kp >> 5;
  const sb = <usize>NG << 2;
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok8(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const w = rowAt(DT_Q4, true, q, K, n);
      const sc = scales + <usize>n * sb;
      const zr = zeros ? zeros + <usize>n * <usize>NG : 0;
      const b = bias ? v128.load(bias + (<usize>n << 2)) : f32x4.splat(0);
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        const L = xt + <usize>Kp + (<usize>Kp >> 3);
        const z = zeroTerms4(sc, sb, zr, NG, L);
        v128.store(out + ((<usize>t * <usize>N + <usize>n) << 2), f32x4.add(f32x4.sub(dot4R(w, sc, NG, Kp, xt), z), b));
      }
    }
    for (; n < n1; n++) {
      const w = rowAt(DT_Q4, true, q, K, n);
      const sc = scales + <usize>n * sb;
      const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        const L = xt + <usize>Kp + (<usize>Kp >> 3);
        store<f32>(out + ((<usize>t * <usize>N + <usize>n) << 2), dot1R(w, sc, Kp, xt) - zeroTerm(sc, zeros ? zeros + <usize>n * <usize>NG : 0, NG, L) + b);
      }
    }
  }
}

// DT_Q4L, int4 in groups of a multiple of 32 columns with a block's 4 rows in the lanes
// (packed.ts): chunk c of a block of 4 rows is 64 bytes, bytes 16i + 4r .. +3 holding bytes
// 4i .. 4i+3 of row r's chunk (columns 8i .. 8i+7: low nibbles the even ones, high the odd);
// scales [N/4][NG][4] f32, zero points (asymmetric) [N/4][NG][4] u8, NG groups a row. A relaxed dot over 16 such bytes gives pair sums that one
// pairwise add turns into the 4 rows' sums, lane r = row r: no horizontal sums, and one
// convert, scaling and FMA a chunk for all 4 rows (the interleaved form: one each per row).

/** 16 bytes of the 4 rows (8 columns each, v) against X: the low nibbles' columns at xo (4 bytes), the high ones' at xo + 16. */
@inline function pairDotsL(v: v128, xo: usize, m: v128): v128 {
  return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xo), v128.and(v, m)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load32_splat(xo, 16), v128.and(i16x8.shr_u(v, 4), m)));
}

/**
 * A block's 4 rows against an 8-bit token, groups of 32 columns: lane r = sum over chunks of
 * scale * xs_c * (X . u - zero * sum X), the zero point (8, or the row's own) taken out in
 * integers per chunk. The 8 pair sums of a chunk stay under 2^15 (8 x 2 x 15 x 127).
 */
@inline function dot4L(w: usize, s4: usize, z4: usize, Kp: i32, xq: usize): v128 {
  const m = i8x16.splat(0x0f);
  const XS = xq + <usize>Kp, SX = XS + (<usize>Kp >> 2);
  let acc = f32x4.splat(0);
  let wc = w, sc = s4, zc = z4;
  for (let c = 0; c < Kp; c += 32) {
    const d = chunkDotL(wc, xq + <usize>c, m);
    const sx = v128.load32_splat(SX + (<usize>c >> 3));
    const zt = z4 ? i32x4.mul(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(zc))), sx) : i32x4.shl(sx, 3);
    acc = fma(f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(d, zt)), v128.load32_splat(XS + (<usize>c >> 3))), v128.load(sc), acc);
    wc += 64;
    sc += 16;
    zc += 4;
  }
  return acc;
}

/**
 * dot4L for groups of cpg chunks (64, 128 columns): the chunks' terms summed in f32 per group,
 * then one scaling a group. (A loop of one chunk a group ran g32 ~9% slower: dot4L stays.)
 */
@inline function dot4LG(w: usize, s4: usize, z4: usize, Kp: i32, cpg: i32, xq: usize): v128 {
  const m = i8x16.splat(0x0f);
  const XS = xq + <usize>Kp, SX = XS + (<usize>Kp >> 2);
  let acc = f32x4.splat(0);
  let wc = w, sc = s4, zc = z4;
  for (let c = 0; c < Kp; ) {
    const ce = min(Kp, c + (cpg << 5));
    const zv = z4 ? i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(zc))) : i32x4.splat(8);
    let part = f32x4.splat(0);
    for (; c < ce; c += 32) {
      const d = chunkDotL(wc, xq + <usize>c, m);
      const zt = i32x4.mul(zv, v128.load32_splat(SX + (<usize>c >> 3)));
      part = fma(f32x4.convert_i32x4_s(i32x4.sub(d, zt)), v128.load32_splat(XS + (<usize>c >> 3)), part);
      wc += 64;
    }
    acc = fma(part, v128.load(sc), acc);
    sc += 16;
    zc += 4;
  }
  return acc;
}

/** X . u of a chunk for the block's 4 rows (lane r = row r), w the chunk's 64 bytes, X at xo. */
@inline function chunkDotL(w: usize, xo: usize, m: v128): v128 {
  const p01 = i16x8.add(pairDotsL(v128.load(w), xo, m), pairDotsL(v128.load(w, 16), xo + 4, m));
  const p23 = i16x8.add(pairDotsL(v128.load(w, 32), xo + 8, m), pairDotsL(v128.load(w, 48), xo + 12, m));
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(p01, p23));
}

/** Few tokens, DT_Q4L (groups of G, a multiple of 32), relaxed SIMD: each block of 4 rows against each 8-bit token (n0 a multiple of 4). */
export function matmulRows4L(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, s4: usize, z4: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok8(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K);
    // one copy of the loop per kernel (grouped a constant)
    if (G == 32) rowsL(false, scratch, tb, out, q, s4, z4, G, bias, t0, t1, K, N, n0, n1);
    else rowsL(true, scratch, tb, out, q, s4, z4, G, bias, t0, t1, K, N, n0, n1);
  }
}

/** Rows [n0, n1) (n0 a multiple of 4) against tokens t0 .. t1 quantized at scratch, tb bytes apart; grouped: G > 32 (dot4LG). */
@inline function rowsL(grouped: bool, scratch: usize, tb: i32, out: usize, q: usize, s4: usize, z4: usize, G: i32, bias: usize, t0: i32, t1: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const Kp = padK(K);
  const NG = (K + G - 1) / G;
  const cpg = G >> 5;
  for (let n = n0; n < n1; n += 4) {
    const blk = <usize>(n >> 2);
    const w = q + blk * (<usize>Kp << 1);
    const sc = s4 + blk * (<usize>NG << 4);
    const zc = z4 ? z4 + blk * (<usize>NG << 2) : 0;
    const full = n + 4 <= n1;
    let b = f32x4.splat(0);
    if (bias) b = full ? v128.load(bias + (<usize>n << 2)) : loadTail(bias + (<usize>n << 2), n1 - n);
    for (let t = t0; t < t1; t++) {
      const xt = scratch + <usize>(t - t0) * <usize>tb;
      let r: v128;
      if (grouped) r = zc ? dot4LG(w, sc, zc, Kp, cpg, xt) : dot4LG(w, sc, 0, Kp, cpg, xt);
      else r = zc ? dot4L(w, sc, zc, Kp, xt) : dot4L(w, sc, 0, Kp, xt);
      r = f32x4.add(r, b);
      const o = out + ((<usize>t * <usize>N + <usize>n) << 2);
      if (full) v128.store(o, r);
      else storeTail(o, r, n1 - n);
    }
  }
}

/** The first n (< 4) floats at p, the other lanes 0. */
@inline function loadTail(p: usize, n: i32): v128 {
  let v = f32x4.replace_lane(f32x4.splat(0), 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** The first n (< 4) lanes of v to p. */
@inline function storeTail(p: usize, v: v128, n: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

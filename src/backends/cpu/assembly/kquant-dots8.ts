// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * K-quant decode with 8-bit activations (kquant.ts), the relaxed build's: one scale per
 * super-block (llama.cpp's Q8_K), the 4- / 5- / 6-bit values the 7-bit unsigned operand of
 * i16x8.relaxed_dot_i8x16_i7x16_s, sub-block scales and mins applied in integers.
 */
import { fma, hsum } from "./simd";
import { blockBytes, blockStride, rowAt, tokBytes, DT_Q4K, DT_Q5K, DT_Q6K } from "./kquant";
import { block6, hsum4, q6Quarter } from "./kquant-dots";

// The token (scratch): int8 X [K] in column order, one scale per super-block xs [K / 256]
// f32 (max|x| of its 256 columns / 127), then the sum of X per 16 columns [K / 16] and per
// 32 columns [K / 32] as i16 (Q6_K's offset of 32 and Q4_K / Q5_K's mins, taken off in
// integers; |sum| <= 32 * 127).

/** Where the 8-bit token at xt keeps its super-block scales, its 16-column sums and its 32-column sums. */
@inline function tok8Scales(xt: usize, K: i32): usize {
  return xt + <usize>K;
}

@inline function tok8Sums16(xt: usize, K: i32): usize {
  return tok8Scales(xt, K) + (<usize>K >> 6);
}

@inline function tok8Sums32(xt: usize, K: i32): usize {
  return tok8Sums16(xt, K) + (<usize>K >> 3);
}

/** x row [K] (K % 256 == 0) -> the 8-bit token at dst (layout above). */
function quantizeTok8(dst: usize, x: usize, K: i32): void {
  const XS = tok8Scales(dst, K), I16 = tok8Sums16(dst, K), I32 = tok8Sums32(dst, K);
  for (let b = 0; b < K; b += 256) {
    let m = f32x4.splat(0);
    for (let k = b; k < b + 256; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const xs: f32 = amax / 127;
    const inv = f32x4.splat(amax > 0 ? <f32>127 / amax : 0);
    store<f32>(XS + (<usize>b >> 6), xs);
    for (let k = b; k < b + 256; k += 16) {
      const p = x + (<usize>k << 2);
      const h0 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 16), inv))));
      const h1 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 32), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 48), inv))));
      v128.store(dst + <usize>k, i8x16.narrow_i16x8_s(h0, h1));
      const l = i32x4.extadd_pairwise_i16x8_s(i16x8.add(h0, h1));
      const isum = i32x4.extract_lane(l, 0) + i32x4.extract_lane(l, 1) + i32x4.extract_lane(l, 2) + i32x4.extract_lane(l, 3);
      store<i16>(I16 + (<usize>k >> 3), <i16>isum);
    }
    for (let k = b; k < b + 256; k += 32) store<i16>(I32 + (<usize>k >> 4), load<i16>(I16 + (<usize>k >> 3)) + load<i16>(I16 + (<usize>k >> 3), 2));
  }
}

/**
 * Two 16-column runs (u 0..31 each) summed in 16 bits (|.| <= 4 * 31 * 127), then each
 * lane pair times the sub-block's scale sc (0..63) and widened (i32x4.dot_i16x8_s): 4 i32 lanes.
 */
@inline function rdot32s(u0: v128, u1: v128, xo: usize, sc: i32): v128 {
  const p = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), u0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 16), u1));
  return i32x4.dot_i16x8_s(p, i16x8.splat(<i16>sc));
}

/** Q4_K / Q5_K mins on the 8-bit token, in integers: sum_s m[s] * (sum of X over sub-block s) (i16 sums at i32s), lanes to be summed. */
@inline function minsI(w: usize, i32s: usize): v128 {
  return i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(v128.load64_zero(w + 16)), v128.load(i32s));
}

/** Q4_K / Q5_K super-block at w against the 8-bit token's block (X at x, scale xs, i16 sums per 32 columns at i32s), added to acc. */
@inline function block45R(dt: i32, w: usize, x: usize, xs: f32, i32s: usize, acc: v128): v128 {
  const d = load<f32>(w);
  const qs = w + (dt == DT_Q4K ? 24 : 56);
  const m = i8x16.splat(0x0f), b5 = i8x16.splat(0x10);
  // Q5_K: bits 0 / 1 of each qh byte are the fifth bits of chunk c's low / high nibbles (shifted down 2 a chunk)
  let hb0 = dt == DT_Q5K ? v128.load(w + 24) : i8x16.splat(0);
  let hb1 = dt == DT_Q5K ? v128.load(w + 40) : i8x16.splat(0);
  let ia = i32x4.splat(0);
  for (let c = 0; c < 4; c++) {
    const o = <usize>c << 5;
    const q0 = v128.load(qs + o), q1 = v128.load(qs + o, 16);
    let l0 = v128.and(q0, m), l1 = v128.and(q1, m);
    let h0 = v128.and(i16x8.shr_u(q0, 4), m), h1 = v128.and(i16x8.shr_u(q1, 4), m);
    if (dt == DT_Q5K) {
      l0 = v128.or(l0, v128.and(i16x8.shl(hb0, 4), b5));
      l1 = v128.or(l1, v128.and(i16x8.shl(hb1, 4), b5));
      h0 = v128.or(h0, v128.and(i16x8.shl(hb0, 3), b5));
      h1 = v128.or(h1, v128.and(i16x8.shl(hb1, 3), b5));
      hb0 = i16x8.shr_u(hb0, 2);
      hb1 = i16x8.shr_u(hb1, 2);
    }
    const xo = x + (<usize>c << 6);
    // sum_s sc[s] * (u . X over sub-block s) in integers (sub-blocks 2c, 2c + 1), then d * xs once
    ia = i32x4.add(ia, rdot32s(l0, l1, xo, load<u8>(w + 8 + (o >> 4))));
    ia = i32x4.add(ia, rdot32s(h0, h1, xo + 32, load<u8>(w + 9 + (o >> 4))));
  }
  return fma(f32x4.convert_i32x4_s(minsI(w, i32s)), f32x4.splat(-load<f32>(w, 4) * xs), fma(f32x4.convert_i32x4_s(ia), f32x4.splat(d * xs), acc));
}

/** Lane i (a constant once inlined) of the i16x8 v in every lane. */
@inline export function bcast16(v: v128, i: i32): v128 {
  if (i == 0) return v128.shuffle<i16>(v, v, 0, 0, 0, 0, 0, 0, 0, 0);
  if (i == 1) return v128.shuffle<i16>(v, v, 1, 1, 1, 1, 1, 1, 1, 1);
  if (i == 2) return v128.shuffle<i16>(v, v, 2, 2, 2, 2, 2, 2, 2, 2);
  if (i == 3) return v128.shuffle<i16>(v, v, 3, 3, 3, 3, 3, 3, 3, 3);
  if (i == 4) return v128.shuffle<i16>(v, v, 4, 4, 4, 4, 4, 4, 4, 4);
  if (i == 5) return v128.shuffle<i16>(v, v, 5, 5, 5, 5, 5, 5, 5, 5);
  if (i == 6) return v128.shuffle<i16>(v, v, 6, 6, 6, 6, 6, 6, 6, 6);
  return v128.shuffle<i16>(v, v, 7, 7, 7, 7, 7, 7, 7, 7);
}

/**
 * q6Group on the 8-bit token, in integers: the values u (0..63) go to the relaxed dot as
 * they are (pairs of products within 16 bits: 2 * 63 * 127), and i32x4.dot_i16x8_s
 * multiplies each pair sum by its sub-block's int8 scale (lanes of sc, the half's 8) and
 * widens in one step; added to the i32 accumulator ia.
 */
@inline export function q6GroupR(w: usize, x: usize, h: i32, l0: i32, sc: v128, ia: v128): v128 {
  const ql = w + 20 + <usize>(64 * h + l0);
  const a = v128.load(ql), b = v128.load(ql, 32);
  const hb = v128.load(w + 148 + <usize>(32 * h + l0));
  const xo = x + <usize>(128 * h + l0);
  const j = l0 >> 4; // sub-block within the half: j + 2r
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), q6Quarter(a, b, hb, 0)), bcast16(sc, j)));
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 32), q6Quarter(a, b, hb, 1)), bcast16(sc, j + 2)));
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 64), q6Quarter(a, b, hb, 2)), bcast16(sc, j + 4)));
  return i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 96), q6Quarter(a, b, hb, 3)), bcast16(sc, j + 6)));
}

/** One row (super-blocks bs bytes apart) against an 8-bit token. */
@inline function rowDotR(dt: i32, w: usize, bs: usize, xt: usize, K: i32): f32 {
  const XS = tok8Scales(xt, K), I16 = tok8Sums16(xt, K), I32 = tok8Sums32(xt, K);
  let acc = f32x4.splat(0);
  for (let b = 0; b < (K >> 8); b++) {
    const wb = w + <usize>b * bs;
    const xs = load<f32>(XS + (<usize>b << 2));
    if (dt == DT_Q6K) acc = block6(wb, xt + (<usize>b << 8), acc, true, xs, I16 + (<usize>b << 5));
    else acc = block45R(dt, wb, xt + (<usize>b << 8), xs, I32 + (<usize>b << 4), acc);
  }
  return hsum(acc);
}

/** Q4_K / Q5_K: the 4 rows of a group against an 8-bit token. */
@inline function rowDot4R(dt: i32, w: usize, xt: usize, K: i32): v128 {
  const bb = blockBytes(dt);
  const XS = tok8Scales(xt, K), I32 = tok8Sums32(xt, K);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let b = 0; b < (K >> 8); b++) {
    const wb = w + <usize>b * 4 * bb;
    const xb = xt + (<usize>b << 8);
    const xs = load<f32>(XS + (<usize>b << 2));
    const sb = I32 + (<usize>b << 4);
    a0 = block45R(dt, wb, xb, xs, sb, a0);
    a1 = block45R(dt, wb + bb, xb, xs, sb, a1);
    a2 = block45R(dt, wb + 2 * bb, xb, xs, sb, a2);
    a3 = block45R(dt, wb + 3 * bb, xb, xs, sb, a3);
  }
  return hsum4(a0, a1, a2, a3);
}

/** matmulDots on the relaxed build: 8-bit tokens, no token scale left to apply. */
@inline export function matmulDotsR(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok8(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K);
    for (let n = n0; n < n1; n += 4) {
      const w = rowAt(dt, q, K, n);
      const rows = min(4, n1 - n);
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        const o = out + ((<usize>t * <usize>N + <usize>n) << 2);
        if (rows == 4 && dt != DT_Q6K) {
          v128.store(o, f32x4.add(rowDot4R(dt, w, xt, K), bias ? v128.load(bias + (<usize>n << 2)) : f32x4.splat(0)));
          continue;
        }
        for (let r = 0; r < rows; r++) {
          const br: f32 = bias ? load<f32>(bias + (<usize>(n + r) << 2)) : 0;
          store<f32>(o + (<usize>r << 2), rowDotR(dt, rowAt(dt, q, K, n + r), blockStride(dt), xt, K) + br);
        }
      }
    }
  }
}

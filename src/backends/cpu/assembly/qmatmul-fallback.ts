// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Packed int8 / int4 decodes a row at a time (qmatmul.ts), for what the row-block kernels of
 * qmatmul-rows.ts do not take: matmulInt (integer dots, the earlier kernel: groups the row
 * blocks do not take, and benchmarks) and matmulFloat (weights widened to f32 lanes: groups
 * that do not nest in the 16 / 32-column chunks, too little scratch, and benchmarks).
 */
import { fma, hsum } from "./simd";
import { absMax, padK, stripedAt, tokBytes, wElem, DT_Q4, DT_Q8, SEG } from "./qmatmul";

/**
 * x row [K] f32 -> int16 at dst + 16 [padK(K)], zero padded, scale at dst.
 * int4 weights want each 32-column chunk as 4 stripes (columns 4i, 4i+1, 4i+2, 4i+3 for
 * i < 8): the order in which 16-bit lanes of packed nibbles come apart (dotQ4).
 */
function quantizeRow(dst: usize, x: usize, K: i32, striped: bool): void {
  const amax = absMax(x, K);
  let k = 0;
  const inv: f32 = amax > 0 ? <f32>32767 / amax : 0;
  store<f32>(dst, amax / 32767);
  const q = dst + 16;
  const Kp = padK(K);
  for (k = 0; k < Kp; k++) {
    const v: i32 = k < K ? <i32>nearest(load<f32>(x + (<usize>k << 2)) * inv) : 0;
    const at = striped ? stripedAt(k) : k;
    store<i16>(q + (<usize>at << 1), <i16>v);
  }
  if (!striped) return;
  // per chunk, the x each i32 lane of the chunk's dots sums: sum x (u - z) = sum x u - z * that
  const one = i16x8.splat(1);
  for (k = 0; k < Kp; k += 32) {
    const xo = q + (<usize>k << 1);
    const l = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(xo), one), i32x4.dot_i16x8_s(v128.load(xo, 16), one)), i32x4.add(i32x4.dot_i16x8_s(v128.load(xo, 32), one), i32x4.dot_i16x8_s(v128.load(xo, 48), one)));
    v128.store(q + (<usize>Kp << 1) + (<usize>k >> 1), l);
  }
}

/** sum x * u over one 32-column int4 chunk (x striped), zero point not applied; shifts alone take the nibbles apart (no mask constants). */
@inline function chunkQ4(w: usize, x: usize, k: i32): v128 {
  const q = v128.load(w + (<usize>k >> 1));
  const xo = x + (<usize>k << 1);
  const a = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(q, 12), 12), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(q, 8), 12), v128.load(xo, 16)));
  const b = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(q, 4), 12), v128.load(xo, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(q, 12), v128.load(xo, 48)));
  return i32x4.add(a, b);
}

/** sum over columns [k0, k1) (multiples of 16, padded) of int8 w * int16 x, in 4 i32 lanes. */
@inline function dotQ8(w: usize, x: usize, k0: i32, k1: i32): v128 {
  let a = i32x4.splat(0), b = i32x4.splat(0);
  for (let k = k0; k < k1; k += 16) {
    const q = v128.load(w + <usize>k);
    const xo = x + (<usize>k << 1);
    a = i32x4.add(a, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), v128.load(xo)));
    b = i32x4.add(b, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), v128.load(xo, 16)));
  }
  return i32x4.add(a, b);
}

/** Same for int4 (k0, k1 multiples of 32; x striped): each 16-bit lane holds 4 nibbles, columns 4i..4i+3. */
@inline function dotQ4(w: usize, x: usize, k0: i32, k1: i32, z: v128): v128 {
  const m = i16x8.splat(0xf);
  let a = i32x4.splat(0), b = i32x4.splat(0);
  for (let k = k0; k < k1; k += 32) {
    const q = v128.load(w + (<usize>k >> 1));
    const xo = x + (<usize>k << 1);
    a = i32x4.add(a, i32x4.dot_i16x8_s(i16x8.sub(v128.and(q, m), z), v128.load(xo)));
    b = i32x4.add(b, i32x4.dot_i16x8_s(i16x8.sub(v128.and(i16x8.shr_u(q, 4), m), z), v128.load(xo, 16)));
    a = i32x4.add(a, i32x4.dot_i16x8_s(i16x8.sub(v128.and(i16x8.shr_u(q, 8), m), z), v128.load(xo, 32)));
    b = i32x4.add(b, i32x4.dot_i16x8_s(i16x8.sub(i16x8.shr_u(q, 12), z), v128.load(xo, 48)));
  }
  return i32x4.add(a, b);
}

/** Columns [k, k + 32) of int8 w against int16 x, in 4 i32 lanes (straight line: one group of 32 is one chunk). */
@inline function chunkQ8(w: usize, x: usize, k: i32): v128 {
  const q0 = v128.load(w + <usize>k), q1 = v128.load(w + <usize>k, 16);
  const xo = x + (<usize>k << 1);
  const a = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q0), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q0), v128.load(xo, 16)));
  const b = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q1), v128.load(xo, 32)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q1), v128.load(xo, 48)));
  return i32x4.add(a, b);
}

/**
 * dot(row n of w, one quantized token xq) in f32, before the token's scale. Groups of
 * 2^shift columns (32..): scaled per 32-column chunk, no loop per group; shift 0: long
 * groups (per channel), summed in i32 over up to SEG columns between scalings.
 */
@inline function rowDot(dt: i32, q: usize, scales: usize, zeros: usize, G: i32, shift: i32, K: i32, n: i32, xq: usize): f32 {
  const NG = (K + G - 1) / G;
  const rb: usize = dt == DT_Q8 ? <usize>K : <usize>((K + 1) >> 1);
  const w = q + <usize>n * rb;
  const sc = scales + ((<usize>n * <usize>NG) << 2);
  const zr = zeros + <usize>n * <usize>NG;
  let acc = f32x4.splat(0);
  if (shift > 0) {
    // past K, x is zero: the extra weight bytes of the last chunk add nothing
    const Kp = padK(K);
    const lsum = xq + (<usize>Kp << 1);
    for (let k = 0; k < Kp; k += 32) {
      const g = <usize>(k >> shift);
      let d: v128;
      if (dt == DT_Q8) d = chunkQ8(w, xq, k);
      else {
        const l = v128.load(lsum + (<usize>k >> 1));
        d = i32x4.sub(chunkQ4(w, xq, k), zeros ? i32x4.mul(l, i32x4.splat(<i32>load<u8>(zr + g))) : i32x4.shl(l, 3));
      }
      acc = fma(f32x4.convert_i32x4_s(d), f32x4.splat(load<f32>(sc + (g << 2))), acc);
    }
    return hsum(acc);
  }
  const step = dt == DT_Q8 ? 16 : 32;
  for (let g = 0; g < NG; g++) {
    const g0 = g * G;
    const g1 = min(g0 + G, (K + step - 1) & ~(step - 1));
    const s = f32x4.splat(load<f32>(sc + (<usize>g << 2)));
    const z = i16x8.splat(zeros ? <i16>load<u8>(zr + <usize>g) : 8);
    for (let k0 = g0; k0 < g1; k0 += SEG) {
      const k1 = min(k0 + SEG, g1);
      const d = dt == DT_Q8 ? dotQ8(w, xq, k0, k1) : dotQ4(w, xq, k0, k1, z);
      acc = fma(f32x4.convert_i32x4_s(d), s, acc);
    }
  }
  return hsum(acc);
}

/** Few tokens: as many quantized x rows as scratch holds, then every row of the share against them. */
export function matmulInt(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  // groups of a power of two from 32 columns up (below K) take the per-chunk loop
  // (int4 with one group per row too: shift 31 puts every chunk in group 0)
  const shift = G >= 32 && G < K && (G & (G - 1)) == 0 ? 31 - clz(G) : dt == DT_Q4 && G >= K ? 31 : 0;
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeRow(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K, dt == DT_Q4);
    for (let n = n0; n < n1; n++) {
      const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
      for (let t = t0; t < t1; t++) {
        const xq = scratch + <usize>(t - t0) * <usize>tb;
        const d = dt == DT_Q8 ? rowDot(DT_Q8, q, scales, zeros, G, shift, K, n, xq + 16) : rowDot(DT_Q4, q, scales, zeros, G, shift, K, n, xq + 16);
        store<f32>(out + ((<usize>t * <usize>N + <usize>n) << 2), d * load<f32>(xq) + b);
      }
    }
  }
}

/** Few tokens, weights widened to f32 lanes per 16 columns and multiplied in f32 (the alternative measured against matmulInt). */
export function matmulFloat(dt: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const NG = (K + G - 1) / G;
  const rb: usize = dt == DT_Q8 ? <usize>K : <usize>((K + 1) >> 1);
  for (let n = n0; n < n1; n++) {
    const w = q + <usize>n * rb;
    for (let t = 0; t < T; t++) {
      const xr = x + ((<usize>t * <usize>K) << 2);
      let s: f32 = 0;
      for (let g = 0; g < NG; g++) {
        const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + <usize>g) : 8;
        const g1 = min(g * G + G, K);
        let k = g * G;
        let a = f32x4.splat(0);
        if (dt == DT_Q8) {
          for (; k + 16 <= g1; k += 16) {
            const v = v128.load(w + <usize>k);
            const lo = i16x8.extend_low_i8x16_s(v), hi = i16x8.extend_high_i8x16_s(v);
            const p = xr + (<usize>k << 2);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), v128.load(p), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), v128.load(p, 16), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), v128.load(p, 32), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), v128.load(p, 48), a);
          }
        }
        else {
          const zv = i8x16.splat(<i8>z);
          for (; k + 32 <= g1; k += 32) {
            const v = v128.load(w + (<usize>k >> 1));
            const lo = v128.and(v, i8x16.splat(0xf)), hi = v128.and(i16x8.shr_u(v, 4), i8x16.splat(0xf));
            // nibbles back in column order: low (even column), high (odd) of each byte
            const c0 = i8x16.sub(v128.shuffle<i8>(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), zv);
            const c1 = i8x16.sub(v128.shuffle<i8>(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), zv);
            const p = xr + (<usize>k << 2);
            let e = i16x8.extend_low_i8x16_s(c0);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), v128.load(p), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), v128.load(p, 16), a);
            e = i16x8.extend_high_i8x16_s(c0);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), v128.load(p, 32), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), v128.load(p, 48), a);
            e = i16x8.extend_low_i8x16_s(c1);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), v128.load(p, 64), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), v128.load(p, 80), a);
            e = i16x8.extend_high_i8x16_s(c1);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), v128.load(p, 96), a);
            a = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), v128.load(p, 112), a);
          }
        }
        let gs = hsum(a);
        for (; k < g1; k++) gs += <f32>(wElem(dt, w, k) - z) * load<f32>(xr + (<usize>k << 2));
        s += gs * load<f32>(scales + ((<usize>n * <usize>NG + <usize>g) << 2));
      }
      store<f32>(out + ((<usize>t * <usize>N + <usize>n) << 2), s + (bias ? load<f32>(bias + (<usize>n << 2)) : 0));
    }
  }
}

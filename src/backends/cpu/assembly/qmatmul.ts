// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * out [T, N] = x [T, K] @ w [N, K]^T (+ bias) with w packed (src/quant/packed.ts):
 *   int8: q [N, K] int8, w = scale[n, g] * q
 *   int4: q [N, ceil(K/2)] (column 2i in the low nibble), w = scale[n, g] * (u - zero[n, g])
 * scales [N, G] f32; zeros [N, G] u8 (asymmetric int4; else zero 8); g = k / groupSize.
 * DT_Q8I / DT_Q4I: the same q bytes placed by packed.ts in blocks of 4 rows, the rows'
 * 32-column chunks side by side (rows padded to 32 columns).
 *
 * Few tokens (decode): each thread quantizes the x rows it needs into its scratch as int16
 * with one scale per token (max|x| / 32767: its error is ~250x below int8 weights'), then 4
 * rows at a time (matmulRows, one copy per format) take integer dot products
 * (i32x4.dot_i16x8_s: 8 multiply-adds per instruction) per 32-column chunk, summed in i32
 * per group (or per 2048 columns) and scaled in f32. int8 lanes are sign-extended; int4
 * nibbles are masked in place (x1, x16, x256) or shifted down (the top one), the x16 / x256
 * dots shifted back in i32; zero points come out of the loop: sum over groups of scale *
 * zero * (sum of X over the group).
 * Int4 in groups of 32 in the interleaved layout, relaxed build: 8-bit activations per 32
 * columns and i16x8.relaxed_dot_i8x16_i7x16_s instead (qmatmul8.ts).
 * Many tokens (prefill), or groups that do not nest in the 16 / 32-column chunks: row
 * blocks are dequantized into scratch as f32 and the f32 tiles of matmul.ts run over them.
 * The earlier row-at-a-time kernel (matmulInt) stays for groups the row blocks do not take
 * (multiples of 16 columns, not 32) and for benchmarks.
 */
import { fma, hsum, shareStart, activeThreads, DT_F32 } from "./simd";
import { matmulRange } from "./matmul";
import { matmulRows4R } from "./qmatmul8";

export const DT_Q8: i32 = 4;
export const DT_Q4: i32 = 5;
/** int8 / int4 in the 4-row interleaved layout (packed.ts): chunks of 32 columns of 4 rows side by side. */
export const DT_Q8I: i32 = 6;
export const DT_Q4I: i32 = 7;

/** Columns summed in i32 before a flush to f32: 2048 int8 x int16 products per lane pair stay under 2^31. */
const SEG: i32 = 2048;
/** From this many tokens on, dequantizing a row block once beats integer dots per token. */
let PREFILL_T: i32 = 16;
/** 0: decode by integer dots over blocks of 4 rows (default); 1: dequantize to f32 lanes and FMA; 2: integer dots a row at a time (the earlier kernel; for benchmarks). */
let FLOAT_DECODE: i32 = 0;

/** Selects the decode kernel and the token count from which row blocks are dequantized; for benchmarks. */
export function packedKernel(floatDecode: i32, prefillT: i32): void {
  FLOAT_DECODE = floatDecode;
  PREFILL_T = prefillT;
}

@inline export function padK(K: i32): i32 {
  return (K + 31) & ~31;
}

/** Bytes of one quantized token in scratch: an f32 scale, 12 pad bytes, int16 [padK(K)], then (int4) i32x4 lane sums per 32-column chunk. */
@inline export function tokBytes(K: i32): i32 {
  return 16 + (padK(K) << 1) + (padK(K) >> 1);
}

/** max |x[k]| over a row of K floats. */
function absMax(x: usize, K: i32): f32 {
  let m = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
  let amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; k < K; k++) amax = max(amax, abs(load<f32>(x + (<usize>k << 2))));
  return amax;
}

/** Where column k of a 32-column chunk goes when X is striped for int4 (column 32c + 4i + s at 32c + 8s + i). */
@inline function stripedAt(k: i32): i32 {
  return (k & ~31) + ((k & 3) << 3) + ((k >> 2) & 7);
}

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

/** Weight element k of row w (scalar: dequantization tails and odd groups). */
@inline function wElem(dt: i32, w: usize, k: i32): i32 {
  if (dt == DT_Q8) return <i32>load<i8>(w + <usize>k);
  const b = <i32>load<u8>(w + (<usize>k >> 1));
  return k & 1 ? b >> 4 : b & 0xf;
}

/** Rows [n0, n1) of w as f32 into dst [n1 - n0, K]. */
function dequantRows(dt: i32, dst: usize, q: usize, scales: usize, zeros: usize, G: i32, K: i32, n0: i32, n1: i32): void {
  const NG = (K + G - 1) / G;
  const rb: usize = dt == DT_Q8 ? <usize>K : <usize>((K + 1) >> 1);
  for (let n = n0; n < n1; n++) {
    const w = q + <usize>n * rb;
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let g = 0; g < NG; g++) {
      const s = load<f32>(scales + ((<usize>n * <usize>NG + <usize>g) << 2));
      const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + <usize>g) : 8;
      const g1 = min(g * G + G, K);
      let k = g * G;
      if (dt == DT_Q8) {
        const sv = f32x4.splat(s);
        for (; k + 16 <= g1; k += 16) {
          const v = v128.load(w + <usize>k);
          const lo = i16x8.extend_low_i8x16_s(v), hi = i16x8.extend_high_i8x16_s(v);
          const p = o + (<usize>k << 2);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), sv));
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), sv), 16);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), sv), 32);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), sv), 48);
        }
      }
      for (; k < g1; k++) store<f32>(o + (<usize>k << 2), s * <f32>(wElem(dt, w, k) - z));
    }
  }
}

/** Many tokens (or odd groups): row blocks dequantized into scratch, then the f32 tiles. */
function matmulDequant(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRows(dt, scratch, q, scales, zeros, G, K, nb, ne);
    // row n of the f32 view lives at scratch + (n - nb) * K * 4
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

/** Few tokens: as many quantized x rows as scratch holds, then every row of the share against them. */
function matmulInt(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
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
function matmulFloat(dt: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
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

// ---- decode, row blocks (default) ----
// The quantized token (scratch): f32 scale, 12 pad bytes, int16 X [padK(K)] (|X| <= 32767),
// then (int4) f32 sums of X per group. int8: X in column order; int4: each 32 columns as 4
// stripes (column 4i + s at 8s + i), the order in which nibbles come out of 16-bit lanes.

/** x row [K] -> X at dst + 16 in the layout of dt, scale at dst; int4: per group sums of X (f32) after X. */
function quantizeTok(dst: usize, x: usize, K: i32, dt: i32, G: i32): void {
  const amax = absMax(x, K);
  let k = 0;
  const inv: f32 = amax > 0 ? <f32>32767 / amax : 0;
  store<f32>(dst, amax / 32767);
  const q = dst + 16;
  const Kp = padK(K);
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

/** Whether the row-block kernels take groups of G over K columns: one group per row, or a multiple of 32 columns up to SEG. */
@inline function rowBlocked(G: i32, K: i32): bool {
  return G >= K || (G % 32 == 0 && G <= SEG);
}

/**
 * Where row n starts and the bytes from one 32-column chunk to the next: il (the 4-row
 * interleaved layout of packed.ts): blocks of 4 rows of padK(K) columns, chunk c of the
 * block's rows side by side; else row-major.
 */
@inline export function rowAt(dt: i32, il: bool, q: usize, K: i32, n: i32): usize {
  const cb: usize = dt != DT_Q4 ? 32 : 16;
  if (il) return q + <usize>(n >> 2) * ((<usize>padK(K) * cb) >> 3) + <usize>(n & 3) * cb;
  return q + <usize>n * (dt != DT_Q4 ? <usize>K : <usize>((K + 1) >> 1));
}

@inline function chunkStride(dt: i32, il: bool): usize {
  return (dt != DT_Q4 ? 32 : 16) << (il ? 2 : 0);
}

/** Few tokens, groups rowBlocked: blocks of 4 rows against each quantized token (dt a constant: one copy per format). */
@inline function matmulRows(dt: i32, il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
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
    for (let t = t0; t < t1; t++) quantizeTok(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K, dt, G);
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

function matmulRows8(il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRows(DT_Q8, il, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
}
function matmulRows4(il: bool, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  matmulRows(DT_Q4, il, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
}

/** Rows [n0, n1) of w in the interleaved layout (groups rowBlocked) as f32 into dst [n1 - n0, K]. */
function dequantRowsIl(dt: i32, dst: usize, q: usize, scales: usize, zeros: usize, G: i32, K: i32, n0: i32, n1: i32): void {
  const NG = (K + G - 1) / G;
  const cs = chunkStride(dt, true);
  const m = i8x16.splat(0xf);
  for (let n = n0; n < n1; n++) {
    let wc = rowAt(dt, true, q, K, n);
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let k = 0; k < K; k += 32) {
      const g = <usize>(k / G);
      const s = load<f32>(scales + ((<usize>n * <usize>NG + g) << 2));
      const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + g) : 8;
      const p = o + (<usize>k << 2);
      if (k + 32 <= K) {
        let c0: v128, c1: v128;
        if (dt == DT_Q8) {
          c0 = v128.load(wc);
          c1 = v128.load(wc, 16);
        } else {
          const v = v128.load(wc);
          const lo = v128.and(v, m), hi = v128.and(i16x8.shr_u(v, 4), m);
          const zv = i8x16.splat(<i8>z);
          // nibbles back in column order: low (even column), high (odd) of each byte
          c0 = i8x16.sub(v128.shuffle<i8>(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), zv);
          c1 = i8x16.sub(v128.shuffle<i8>(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), zv);
        }
        const sv = f32x4.splat(s);
        let e = i16x8.extend_low_i8x16_s(c0);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv));
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 16);
        e = i16x8.extend_high_i8x16_s(c0);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 32);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 48);
        e = i16x8.extend_low_i8x16_s(c1);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 64);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 80);
        e = i16x8.extend_high_i8x16_s(c1);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 96);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 112);
      } else {
        for (let j = 0; j < K - k; j++) store<f32>(p + (<usize>j << 2), s * <f32>(wElem(dt, wc, j) - z));
      }
      wc += cs;
    }
  }
}

/** Many tokens, interleaved layout: row blocks dequantized into scratch, then the f32 tiles. */
function matmulDequantIl(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRowsIl(dt, scratch, q, scales, zeros, G, K, nb, ne);
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

/** This thread's share of out [T, N] = x [T, K] @ w^T, w packed in dt (DT_Q8 / DT_Q4) with groups of G columns. */
export function matmulQ(tid: i32, nth: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, dt: i32, G: i32, bias: usize, T: i32, K: i32, N: i32): void {
  const act = activeThreads(N, nth, max(4, (1 << 16) / max(1, T * K)));
  const n0 = shareStart(N, tid, act, 4);
  const n1 = shareStart(N, tid + 1, act, 4);
  if (n0 >= n1) return;
  if (dt == DT_Q8I || dt == DT_Q4I) {
    // the interleaved layout (packed.ts places it only for rowBlocked groups)
    if (T >= PREFILL_T && scratchBytes >= K * 4) {
      if (dt == DT_Q8I) matmulDequantIl(DT_Q8, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
      else matmulDequantIl(DT_Q4, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    } else if (dt == DT_Q8I) matmulRows8(true, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else if (ASC_FEATURE_RELAXED_SIMD && G == 32 && FLOAT_DECODE == 0) matmulRows4R(scratch, scratchBytes, out, x, q, scales, zeros, bias, T, K, N, n0, n1);
    else matmulRows4(true, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    return;
  }
  // integer dots need every group to start on a chunk (16 columns int8, 32 int4)
  const nests = G >= K || G % (dt == DT_Q8 ? 16 : 32) == 0;
  if ((T >= PREFILL_T || !nests) && scratchBytes >= K * 4) {
    if (dt == DT_Q8) matmulDequant(DT_Q8, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else matmulDequant(DT_Q4, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
  } else if (FLOAT_DECODE == 1 || !nests || scratchBytes < tokBytes(K)) {
    if (dt == DT_Q8) matmulFloat(DT_Q8, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else matmulFloat(DT_Q4, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
  } else if (FLOAT_DECODE == 0 && rowBlocked(G, K)) {
    if (dt == DT_Q8) matmulRows8(false, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else matmulRows4(false, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
  } else if (dt == DT_Q8) matmulInt(DT_Q8, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
  else matmulInt(DT_Q4, scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
}

/** This thread's share of rows [n0, n1) of w (packed in dt, any layout) as f32 into dst [n1 - n0, K]: the BLAS path's widening (../blas-matmul.ts). */
export function dequantRowsShare(tid: i32, nth: i32, dst: usize, q: usize, scales: usize, zeros: usize, dt: i32, G: i32, K: i32, n0: i32, n1: i32): void {
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K)));
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  const d = dst + ((<usize>(r0 - n0) * <usize>K) << 2);
  if (dt == DT_Q8I) dequantRowsIl(DT_Q8, d, q, scales, zeros, G, K, r0, r1);
  else if (dt == DT_Q4I) dequantRowsIl(DT_Q4, d, q, scales, zeros, G, K, r0, r1);
  else if (dt == DT_Q8) dequantRows(DT_Q8, d, q, scales, zeros, G, K, r0, r1);
  else dequantRows(DT_Q4, d, q, scales, zeros, G, K, r0, r1);
}

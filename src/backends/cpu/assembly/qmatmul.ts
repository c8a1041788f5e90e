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
 * Int4, relaxed build: 8-bit activations per 32 columns and i16x8.relaxed_dot_i8x16_i7x16_s
 * instead (qmatmul8.ts): groups of a multiple of 32 on the lanes layout (DT_Q4L, a block's 4
 * rows in the lanes) as packed.ts places them there, groups of 32 on the interleaved one too.
 * Many tokens (prefill), or groups that do not nest in the 16 / 32-column chunks: row
 * blocks are dequantized into scratch as f32 and the f32 tiles of matmul.ts run over them.
 * The earlier row-at-a-time kernel (matmulInt) stays for groups the row blocks do not take
 * (multiples of 16 columns, not 32) and for benchmarks.
 *
 * Files: this one holds the formats, the helpers the kernels share (token sizes, the row
 * layouts) and the entry points (matmulQ picks the kernel); qmatmul-rows.ts the default
 * decode (4-row blocks), qmatmul-fallback.ts the row-at-a-time decodes, qmatmul-dequant.ts
 * the dequantized row blocks (prefill, BLAS), qmatmul8.ts the relaxed build's int4 decode with 8-bit activations.
 */
import { shareStart, activeThreads } from "./simd";
import { matmulRows4L, matmulRows4R } from "./qmatmul8";
import { matmulRows4, matmulRows8, matmulRowsW8A8 } from "./qmatmul-rows";
import { matmulFloat, matmulInt } from "./qmatmul-fallback";
import { dequantRows, dequantRowsIl, dequantRowsL, matmulDequant, matmulDequantIl, matmulDequantL } from "./qmatmul-dequant";

export const DT_Q8: i32 = 4;
export const DT_Q4: i32 = 5;
/** int8 / int4 in the 4-row interleaved layout (packed.ts): chunks of 32 columns of 4 rows side by side. */
export const DT_Q8I: i32 = 6;
export const DT_Q4I: i32 = 7;
/**
 * int4 in groups of a multiple of 32 columns with a block's 4 rows in the lanes (qmatmul8.ts,
 * packed.ts), for the relaxed build's 8-bit decode; scales and zero points in blocks of 4 rows
 * too. (8..10: K-quants.)
 */
export const DT_Q4L: i32 = 11;
/**
 * A flag on DT_Q8 / DT_Q8I: w8a8 (SmoothQuant), the activations quantized per token to
 * int8 as well (src/quant/w8a8.ts), so every token count takes the integer dots.
 */
export const ACT8: i32 = 0x10000;

/** Columns summed in i32 before a flush to f32: 2048 int8 x int16 products per lane pair stay under 2^31. */
export const SEG: i32 = 2048;
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
export function absMax(x: usize, K: i32): f32 {
  let m = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
  let amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; k < K; k++) amax = max(amax, abs(load<f32>(x + (<usize>k << 2))));
  return amax;
}

/** Where column k of a 32-column chunk goes when X is striped for int4 (column 32c + 4i + s at 32c + 8s + i). */
@inline export function stripedAt(k: i32): i32 {
  return (k & ~31) + ((k & 3) << 3) + ((k >> 2) & 7);
}

/** Weight element k of row w (scalar: dequantization tails and odd groups). */
@inline export function wElem(dt: i32, w: usize, k: i32): i32 {
  if (dt == DT_Q8) return <i32>load<i8>(w + <usize>k);
  const b = <i32>load<u8>(w + (<usize>k >> 1));
  return k & 1 ? b >> 4 : b & 0xf;
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

@inline export function chunkStride(dt: i32, il: bool): usize {
  return (dt != DT_Q4 ? 32 : 16) << (il ? 2 : 0);
}

/** This thread's share of out [T, N] = x [T, K] @ w^T, w packed in dt (DT_Q8 / DT_Q4) with groups of G columns. */
export function matmulQ(tid: i32, nth: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, dt: i32, G: i32, bias: usize, T: i32, K: i32, N: i32): void {
  const act = activeThreads(N, nth, max(4, (1 << 16) / max(1, T * K)));
  const n0 = shareStart(N, tid, act, 4);
  const n1 = shareStart(N, tid + 1, act, 4);
  if (n0 >= n1) return;
  if (dt & ACT8) {
    // int8 x int8 sums for every token count (the reference's numerics; no dequantized
    // prefill): per-channel groups always take the row blocks; the bind sizes scratch for a token
    if (scratchBytes < tokBytes(K) || !rowBlocked(G, K)) unreachable();
    matmulRowsW8A8((dt & ~ACT8) == DT_Q8I, scratch, scratchBytes, out, x, q, scales, G, bias, T, K, N, n0, n1);
    return;
  }
  if (dt == DT_Q4L) {
    // placed only where the relaxed build runs (packed.ts)
    if (T >= PREFILL_T && scratchBytes >= K * 4) matmulDequantL(scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else if (ASC_FEATURE_RELAXED_SIMD && scratchBytes >= tokBytes(K)) matmulRows4L(scratch, scratchBytes, out, x, q, scales, zeros, G, bias, T, K, N, n0, n1);
    else unreachable();
    return;
  }
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
  dt &= ~ACT8; // w8a8 rows are int8 rows (its tokens are rounded by the caller)
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K)));
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  const d = dst + ((<usize>(r0 - n0) * <usize>K) << 2);
  if (dt == DT_Q4L) dequantRowsL(d, q, scales, zeros, G, K, r0, r1);
  else if (dt == DT_Q8I) dequantRowsIl(DT_Q8, d, q, scales, zeros, G, K, r0, r1);
  else if (dt == DT_Q4I) dequantRowsIl(DT_Q4, d, q, scales, zeros, G, K, r0, r1);
  else if (dt == DT_Q8) dequantRows(DT_Q8, d, q, scales, zeros, G, K, r0, r1);
  else dequantRows(DT_Q4, d, q, scales, zeros, G, K, r0, r1);
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * out [T, N] = x [T, K] @ w [N, K]^T (+ bias) with w a GGUF K-quant (Q4_K, Q5_K, Q6_K) in
 * the kernel form ../kquant-layout.ts places: Q4_K / Q5_K rows in groups of 4 (padded with zero
 * rows), a group's super-blocks of 256 columns in order, the 4 rows' block b side by side; Q6_K
 * row-major; each block with its scales decoded at bind (f32 d / dmin, a byte per sub-block scale):
 *   DT_Q4K (152 B): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | u8 qs[128]
 *   DT_Q5K (184 B): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | u8 qh[32] | u8 qs[128]
 *   DT_Q6K (212 B): f32 d | i8 sc[16] | u8 ql[128] | u8 qh[64]
 * qs / qh / ql are GGUF's bytes as they are (checkpoint/ggml-kquants.ts): Q4_K chunk c of
 * 64 columns is qs[32c ..]: low nibbles columns 64c.., high nibbles 64c + 32..; Q5_K adds
 * bit 2c / 2c + 1 of qh[l] as bit 4; Q6_K half h: ql[64h + l] low / high nibbles and
 * ql[64h + 32 + l] low / high give columns 128h + l, +64 and +32, +96, with 2-bit pairs
 * of qh[32h + l] above them, minus 32. In that order 16 bytes of weights come apart into
 * 16 consecutive columns, so the activations stay in column order.
 *
 * Few tokens (decode): each thread quantizes the x rows into its scratch as int16 with one
 * scale per token (as qmatmul.ts; plus each 32-column sub-block's sum, for the mins), then
 * per row and token: integer dots per sub-block (i32x4.dot_i16x8_s over the weights
 * widened to i16), each scaled in f32 by d * sc[s]; minus sum_s dmin * m[s] * xsum[s].
 * On the relaxed build they decode with 8-bit activations instead, one scale per
 * super-block (llama.cpp's Q8_K), the 4- / 5- / 6-bit values being the 7-bit unsigned operand
 * of i16x8.relaxed_dot_i8x16_i7x16_s (matmulDotsR).
 * Many tokens (prefill): row blocks dequantized into scratch (the reference's values:
 * (d * sc) * q - dmin * m, rounded to f32 at each step) and the f32 tiles of matmul.ts.
 *
 * Files: this one holds the formats' layout helpers and the entry points (matmulK picks the
 * kernel); kquant-dots.ts the decode with int16 activations (plain build) and the
 * super-block kernels, kquant-dots8.ts the decode with 8-bit activations (relaxed build),
 * kquant-dequant.ts the dequantized row blocks (prefill, BLAS).
 */
import { activeThreads, shareStart } from "./simd";
import { matmulDots } from "./kquant-dots";
import { matmulDotsR } from "./kquant-dots8";
import { dequantRowsAny, matmulDequant } from "./kquant-dequant";

export const DT_Q4K: i32 = 8;
export const DT_Q5K: i32 = 9;
export const DT_Q6K: i32 = 10;

/** Whether a packed dtype code is a K-quant's (the codes past them are qmatmul.ts's again). */
@inline export function isKQuant(dt: i32): bool {
  return dt >= DT_Q4K && dt <= DT_Q6K;
}

/** From this many tokens on, dequantizing a row block once beats integer dots per token. */
const PREFILL_T: i32 = 16;

@inline export function blockBytes(dt: i32): usize {
  return dt == DT_Q4K ? 152 : dt == DT_Q5K ? 184 : 212;
}

/** Rows side by side: 4 for Q4_K / Q5_K (their decode takes 4 rows a pass), 1 for Q6_K (four of its blocks at once measured slower). */
@inline export function groupRows(dt: i32): usize {
  return dt == DT_Q6K ? 1 : 4;
}

/** Bytes from one super-block of a row to its next. */
@inline export function blockStride(dt: i32): usize {
  return groupRows(dt) * blockBytes(dt);
}

/** Where row n's first super-block is: its group of groupRows rows, then its place among them. */
@inline export function rowAt(dt: i32, q: usize, K: i32, n: i32): usize {
  const G = groupRows(dt);
  return q + (<usize>n / G) * <usize>(K >> 8) * G * blockBytes(dt) + (<usize>n % G) * blockBytes(dt);
}

/** Bytes of one quantized token in scratch: f32 scale, 12 pad bytes, int16 [K], f32 sums [K / 32] (the 8-bit token of quantizeTok8, ~1.2 K bytes, fits too). */
@inline export function tokBytes(K: i32): i32 {
  return 16 + (K << 1) + (K >> 3);
}

function matmulDots4(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q4K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q4K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}
function matmulDots5(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q5K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q5K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}
function matmulDots6(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q6K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q6K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}

/** This thread's share of out [T, N] = x [T, K] @ w^T, w a K-quant (dt DT_Q4K / DT_Q5K / DT_Q6K) in the kernel form, K % 256 == 0. */
export function matmulK(tid: i32, nth: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, dt: i32, bias: usize, T: i32, K: i32, N: i32): void {
  const act = activeThreads(N, nth, max(4, (1 << 16) / max(1, T * K)));
  const n0 = shareStart(N, tid, act, 4);
  const n1 = shareStart(N, tid + 1, act, 4);
  if (n0 >= n1) return;
  // a quantized token (2K + K/8 bytes) needs less scratch than a dequantized row (4K)
  if (scratchBytes < tokBytes(K)) unreachable(); // K past ~30000 columns at the default 64 KiB: a trap, not an overrun
  if (T >= PREFILL_T && scratchBytes >= K * 4) {
    matmulDequant(dt, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  } else if (dt == DT_Q4K) matmulDots4(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else if (dt == DT_Q5K) matmulDots5(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots6(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}

/** This thread's share of rows [n0, n1) of w as f32 into dst [n1 - n0, K]: the BLAS path's dequantization (../blas-matmul.ts). */
export function dequantRowsKShare(tid: i32, nth: i32, dst: usize, q: usize, dt: i32, K: i32, n0: i32, n1: i32): void {
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K)));
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  dequantRowsAny(dt, dst + ((<usize>(r0 - n0) * <usize>K) << 2), q, K, r0, r1);
}

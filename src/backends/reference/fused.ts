/**
 * The reference definition of each fused op, written as the composition of the plain
 * ops it replaces (ops.ts), so that a fused graph computes exactly what the plain one did.
 * Fast kernels do the same work in one pass over memory; these say what that work is.
 */
import type { AttentionGeometry, RotaryDims } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import { attention, rmsnorm, rope, type LayerCache } from "./ops.js";

/** sum = a + b; out = rmsnorm(sum) with weight [cols]. All [rows, cols]. */
export function addRmsnorm(
  out: Float32Array,
  sum: Float32Array,
  a: Float32Array,
  b: Float32Array,
  weight: Float32Array,
  eps: number,
): void {
  for (let i = 0; i < sum.length; i++) sum[i] = a[i] + b[i];
  rmsnorm(out, sum, weight, eps, weight.length);
}

/** out [rows, I] = silu(x[:, :I]) * x[:, I:], x [rows, 2I] = gate|up */
export function siluMulPacked(out: Float32Array, x: Float32Array, I: number): void {
  const rows = out.length / I;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < I; i++) {
      const g = x[r * 2 * I + i];
      const silu = g / (1 + Math.exp(-g)); // rounded to float32 where the plain graph stores it
      out[r * I + i] = Math.fround(silu) * x[r * 2 * I + I + i];
    }
  }
}

export interface QkvAttentionArgs extends AttentionGeometry {
  rotary: RotaryDims;
  eps: number;
}

/**
 * Attention from packed rows qkv [T, qDim + 2*kvDim] (q | k | v):
 *   q, k <- per-head RMSNorm (when norm weights [headDim] are given), then RoPE;
 *   k, v -> the layer's cache at each token's slot; then causal attention as `attention`.
 * qRot [T, qDim] receives the rotated queries; out [T, qDim] the result.
 * Every K/V of the step is written before any token attends (tokens of one sequence
 * in the same step see each other).
 */
export function attentionQkv(
  out: Float32Array,
  qRot: Float32Array,
  qkv: Float32Array,
  invFreq: Float32Array,
  qNorm: Float32Array | undefined,
  kNorm: Float32Array | undefined,
  cache: LayerCache,
  step: StepBatch,
  blockSize: number,
  g: QkvAttentionArgs,
): void {
  const qDim = g.numHeads * g.headDim;
  const kvDim = g.numKvHeads * g.headDim;
  const rowLen = qDim + 2 * kvDim;
  const k = new Float32Array(kvDim);
  for (let t = 0; t < step.numTokens; t++) {
    const row = t * rowLen;
    const pos = step.positions.subarray(t, t + 1);
    const q = qRot.subarray(t * qDim, (t + 1) * qDim);
    q.set(qkv.subarray(row, row + qDim));
    if (qNorm) rmsnorm(q, q, qNorm, g.eps, g.headDim);
    rope(q, q, pos, invFreq, g.headDim, g.rotary);

    // k is normed and rotated, then k and v go into their cache slot
    k.set(qkv.subarray(row + qDim, row + qDim + kvDim));
    if (kNorm) rmsnorm(k, k, kNorm, g.eps, g.headDim);
    rope(k, k, pos, invFreq, g.headDim, g.rotary);
    cache.k.write(step.slotMapping[t], k);
    cache.v.write(step.slotMapping[t], qkv.subarray(row + qDim + kvDim, row + rowLen));
  }
  attention(out, qRot, cache, step, blockSize, g);
}

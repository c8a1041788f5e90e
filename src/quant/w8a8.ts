/**
 * The reference W8A8 matmul (SmoothQuant's "per-token + per-channel" config): the input
 * is quantized to int8 at run time, one scale per row (token), the weight is int8 with
 * one scale per output channel, the dot products are exact integer sums, and the two
 * scales are applied to each sum:
 *
 *   sx[t] = max_k |x[t, k]| / 127            qx[t, k] = clamp(round(x[t, k] / sx[t]), -127, 127)
 *   out[t, n] = (sum_k qx[t, k] * qw[n, k]) * sx[t] * sw[n]  (+ bias[n])
 *
 * The sums are exact as int32 while K * 127 * 127 < 2^31 (K <= W8A8_MAX_K); JS numbers
 * hold them exactly, so this is the int32 accumulation a GPU kernel does.
 */
import type { PackedMatrix } from "./packed.js";

/** The widest input whose int8 x int8 sums cannot overflow int32. */
export const W8A8_MAX_K = Math.floor((2 ** 31 - 1) / (127 * 127));

/** Quantizes x[xo, xo + K) into q[qo, qo + K); returns the row's scale (float32; 0 for an all-zero row). */
export function quantizeRowInt8(x: Float32Array, xo: number, K: number, q: Int8Array, qo: number): number {
  let amax = 0;
  for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[xo + k]));
  const scale = Math.fround(amax / 127);
  for (let k = 0; k < K; k++) q[qo + k] = scale ? Math.min(127, Math.max(-127, Math.round(x[xo + k] / scale))) : 0;
  return scale;
}

/** out [T, N] = x [T, K] @ w [N, K]^T (+ bias [N]), w of dtype w8a8 (per-channel int8). */
export function matmulW8A8(out: Float32Array, x: Float32Array, w: PackedMatrix, bias: Float32Array | undefined, T: number, K: number, N: number): void {
  if (w.dtype !== "w8a8" || w.layout.groupSize !== K) throw new Error(`matmulW8A8: weight is ${w.dtype} with groups of ${w.layout.groupSize}, want w8a8 per output channel (${K})`);
  if (K > W8A8_MAX_K) throw new RangeError(`matmulW8A8: K ${K} exceeds ${W8A8_MAX_K}: int32 sums could overflow`);
  const qx = new Int8Array(T * K); // [T, K] the quantized input
  const sx = new Float32Array(T); // [T] its per-token scales
  for (let t = 0; t < T; t++) sx[t] = quantizeRowInt8(x, t * K, K, qx, t * K);
  const qw = new Int8Array(w.q.buffer, w.q.byteOffset, N * K); // [N, K] the same bytes, signed
  for (let n = 0; n < N; n++) {
    const wo = n * K;
    for (let t = 0; t < T; t++) {
      const xo = t * K;
      let acc = 0; // an exact integer (|acc| < 2^31)
      for (let k = 0; k < K; k++) acc += qx[xo + k] * qw[wo + k];
      const v = acc * sx[t] * w.scales[n];
      out[t * N + n] = bias ? v + bias[n] : v;
    }
  }
}

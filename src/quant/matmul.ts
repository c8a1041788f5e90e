/**
 * The reference matmul over packed weights: each weight row is dequantized on the fly
 * (packed.ts dequantizeRow) into float32 and used exactly as ops.matmul uses a float
 * row, so the result equals ops.matmul over dequantize(w) bit for bit. Fast kernels
 * for int8 / int4 weights are tested against this. K-quant weights have a kernel of their
 * own that reads the super-blocks (kquant.ts); w8a8 weights go to the W8A8 matmul (w8a8.ts),
 * which quantizes the input as well.
 */
import { isKQuant } from "../checkpoint/ggml-kquants.js";
import { matmulKQuant } from "./kquant.js";
import { dequantizeRow, type PackedMatrix } from "./packed.js";
import { matmulW8A8 } from "./w8a8.js";

/** out [T, N] = x [T, K] @ dequantize(w) [N, K]^T (+ bias [N]) */
export function matmulPacked(out: Float32Array, x: Float32Array, w: PackedMatrix, bias: Float32Array | undefined, T: number, K: number, N: number): void {
  if (w.cols !== K || w.rows !== N) throw new Error(`matmulPacked: weight [${w.rows}, ${w.cols}] for K ${K}, N ${N}`);
  if (isKQuant(w.dtype)) return matmulKQuant(out, x, w, bias, T, K, N);
  if (w.dtype === "w8a8") return matmulW8A8(out, x, w, bias, T, K, N); // quantizes x too
  const row = new Float32Array(K); // one dequantized weight row, reused by every token
  for (let n = 0; n < N; n++) {
    dequantizeRow(w, n, row);
    for (let t = 0; t < T; t++) {
      const xo = t * K;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[xo + k] * row[k];
      out[t * N + n] = bias ? acc + bias[n] : acc;
    }
  }
}

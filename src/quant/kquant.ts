/**
 * GGUF K-quant tensors (Q4_K, Q5_K, Q6_K) as packed matrices, and the reference matmul
 * that reads their super-blocks directly: per sub-block s of a weight row,
 *   sum_k x[k] * w[k] = sum_s ( scale[s] * sum_{k in s} q[k] x[k]  -  min[s] * sum_{k in s} x[k] )
 * so the integers are never widened to weights; only the sums are scaled. The result
 * equals ops.matmul over dequantize(w) up to float rounding of that reordering.
 */
import { KQUANTS, QK_K, type KQuantDType } from "../checkpoint/ggml-kquants.js";
import { KQUANT_LAYOUT, rowBytes, type PackedMatrix } from "./packed.js";

/** raw: a GGUF tensor's super-blocks [rows, cols / 256 * blockBytes], kept as they are. */
export function packedFromKQuant(raw: Uint8Array, dtype: KQuantDType, rows: number, cols: number): PackedMatrix {
  if (cols % QK_K !== 0 || raw.length !== rows * rowBytes(dtype, cols)) {
    throw new Error(`${KQUANTS[dtype].typeName} [${rows}, ${cols}]: ${raw.length} bytes, want ${cols % QK_K ? "columns a multiple of 256" : rows * rowBytes(dtype, cols)}`);
  }
  return { dtype, layout: { ...KQUANT_LAYOUT }, rows, cols, q: raw, scales: new Float32Array(0), zeros: null };
}

/** out [T, N] = x [T, K] @ w [N, K]^T (+ bias [N]), w K-quant. */
export function matmulKQuant(out: Float32Array, x: Float32Array, w: PackedMatrix, bias: Float32Array | undefined, T: number, K: number, N: number): void {
  const f = KQUANTS[w.dtype as KQuantDType];
  const nb = K / QK_K;
  const sub = f.subBlock;
  const subsPerBlock = QK_K / sub;
  const q = new Int8Array(K); // one weight row's integers, reused by every token
  const scale = new Float32Array(nb * subsPerBlock); // [K / sub]
  const min = new Float32Array(nb * subsPerBlock); // [K / sub]
  const rowAt = rowBytes(w.dtype, K);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const s0 = b * subsPerBlock;
      f.unpack(w.q, n * rowAt + b * f.blockBytes, q.subarray(b * QK_K, (b + 1) * QK_K), scale.subarray(s0, s0 + subsPerBlock), min.subarray(s0, s0 + subsPerBlock));
    }
    for (let t = 0; t < T; t++) {
      const xo = t * K;
      let acc = 0;
      for (let s = 0, k = 0; s < scale.length; s++) {
        let dot = 0;
        let sum = 0;
        for (const end = k + sub; k < end; k++) {
          dot += q[k] * x[xo + k];
          sum += x[xo + k];
        }
        acc += scale[s] * dot - min[s] * sum;
      }
      out[t * N + n] = bias ? acc + bias[n] : acc;
    }
  }
}

/**
 * The reference definition of every graph op: plain loops over row-major Float32Arrays,
 * written to be read (llama2.c's run.c is the model). Sums accumulate in float64.
 * Fast kernels are tested against these.
 */
import type { RopeConfig } from "../../checkpoint/config.js";
import type { AttentionGeometry, RotaryDims } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import type { KvPlane } from "./kv-plane.js";
import { ropeInvFreq, ropePair } from "./rope.js";

/** out[t, :] = table[ids[t], :]   table [vocab, H], out [T, H] */
export function embedding(out: Float32Array, table: Float32Array, ids: Int32Array, H: number): void {
  const vocab = table.length / H;
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id < 0 || id >= vocab) throw new RangeError(`token id ${id} outside the vocabulary [0, ${vocab})`);
    out.set(table.subarray(id * H, (id + 1) * H), t * H);
  }
}

/** RMSNorm of each `group`-sized slice of x [rows, cols] with weight [group]. Safe in place. */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, eps: number, group: number): void {
  for (let base = 0; base < x.length; base += group) {
    let ss = 0;
    for (let i = 0; i < group; i++) ss += x[base + i] * x[base + i];
    const inv = 1 / Math.sqrt(ss / group + eps);
    for (let i = 0; i < group; i++) out[base + i] = weight[i] * (inv * x[base + i]);
  }
}

/** out [T, N] = x [T, K] @ w [N, K]^T (+ bias [N]) */
export function matmul(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  T: number,
  K: number,
  N: number,
): void {
  // weight row outermost: each row is read from memory once and reused for every token
  for (let n = 0; n < N; n++) {
    const wo = n * K;
    for (let t = 0; t < T; t++) {
      const xo = t * K;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[xo + k] * w[wo + k];
      out[t * N + n] = bias ? acc + bias[n] : acc;
    }
  }
}

/** out [1, rope.dim / 2] = the inverse frequency of each rotated pair (float32, as models store them). */
export function ropeInvFreqOp(out: Float32Array, cfg: RopeConfig): void {
  out.set(ropeInvFreq(cfg));
}

/**
 * Rotates every head of x [T, heads*headDim] by its token's position, pair i by the
 * angle position * invFreq[i]. Safe in place (out === x).
 */
export function rope(
  out: Float32Array,
  x: Float32Array,
  positions: Int32Array,
  invFreq: Float32Array,
  headDim: number,
  rotary: RotaryDims,
): void {
  if (out !== x) out.set(x); // dimensions past rotary.dim (partial rotary) pass through
  const cols = x.length / positions.length;
  for (let t = 0; t < positions.length; t++) {
    for (let i = 0; i < rotary.dim / 2; i++) {
      const angle = positions[t] * invFreq[i];
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      const [a, b] = ropePair(rotary, i);
      for (let h = t * cols; h < (t + 1) * cols; h += headDim) {
        const x0 = x[h + a];
        const x1 = x[h + b];
        out[h + a] = x0 * cos - x1 * sin;
        out[h + b] = x0 * sin + x1 * cos;
      }
    }
  }
}

/** The paged KV cache of one layer: K and V planes of [numSlots, kvHeads*headDim]. */
export interface LayerCache {
  k: KvPlane;
  v: KvPlane;
}

/** Copies k, v [T, kvDim] into the cache rows given by slotMapping. */
export function kvWrite(cache: LayerCache, k: Float32Array, v: Float32Array, slotMapping: Int32Array): void {
  const kvDim = k.length / slotMapping.length;
  for (let t = 0; t < slotMapping.length; t++) {
    cache.k.write(slotMapping[t], k.subarray(t * kvDim, (t + 1) * kvDim));
    cache.v.write(slotMapping[t], v.subarray(t * kvDim, (t + 1) * kvDim));
  }
}

/**
 * Causal attention for a ragged step: the token at position p of sequence s attends
 * to that sequence's cached positions max(0, p - window + 1) ..= p. Query head h reads
 * KV head h / (numHeads / numKvHeads) (GQA). q, out: [T, numHeads*headDim].
 */
export function attention(
  out: Float32Array,
  q: Float32Array,
  cache: LayerCache,
  step: StepBatch,
  blockSize: number,
  g: AttentionGeometry,
): void {
  const { numHeads, numKvHeads, headDim, scale } = g;
  const qDim = numHeads * headDim;
  const group = numHeads / numKvHeads;
  const scores = new Float64Array(Math.max(1, ...step.contextLens));
  const acc = new Float64Array(headDim);
  const slotOf = (table: Int32Array, j: number) => table[Math.floor(j / blockSize)] * blockSize + (j % blockSize);
  for (let s = 0; s + 1 < step.seqStarts.length; s++) {
    const table = step.blockTables[s];
    for (let t = step.seqStarts[s]; t < step.seqStarts[s + 1]; t++) {
      const pos = step.positions[t];
      const first = g.slidingWindow === null ? 0 : Math.max(0, pos - g.slidingWindow + 1);
      for (let h = 0; h < numHeads; h++) {
        const qo = t * qDim + h * headDim;
        const ko = Math.floor(h / group) * headDim;
        // scores over the visible positions, then softmax
        let max = -Infinity;
        for (let j = first; j <= pos; j++) {
          const k = cache.k.row(slotOf(table, j));
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[qo + d] * k[ko + d];
          scores[j] = dot * scale;
          if (scores[j] > max) max = scores[j];
        }
        let sum = 0;
        for (let j = first; j <= pos; j++) {
          scores[j] = Math.exp(scores[j] - max);
          sum += scores[j];
        }
        // weighted sum of values
        acc.fill(0);
        for (let j = first; j <= pos; j++) {
          const v = cache.v.row(slotOf(table, j));
          for (let d = 0; d < headDim; d++) acc[d] += scores[j] * v[ko + d];
        }
        for (let d = 0; d < headDim; d++) out[qo + d] = acc[d] / sum;
      }
    }
  }
}

/** out = silu(x) = x * sigmoid(x), elementwise */
export function silu(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i] / (1 + Math.exp(-x[i]));
}

/** out = a * b, elementwise */
export function mul(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] * b[i];
}

/** out = a + b, elementwise */
export function add(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

/** out [rows, n] = x [rows, xCols] columns start .. start + n */
export function sliceCols(out: Float32Array, x: Float32Array, xCols: number, start: number, n: number): void {
  const rows = x.length / xCols;
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * xCols + start, r * xCols + start + n), r * n);
}

/** out [R, cols] = x [T, cols] rows `rows` */
export function gatherRows(out: Float32Array, x: Float32Array, rows: Int32Array, cols: number): void {
  for (let r = 0; r < rows.length; r++) out.set(x.subarray(rows[r] * cols, (rows[r] + 1) * cols), r * cols);
}

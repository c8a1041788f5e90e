/**
 * Prefill attention through the system BLAS, for the sequences of a step with many query
 * tokens. The sequence's keys and values are gathered out of the paged cache into f32, some
 * KV heads at a time (assembly/attention-blas.ts gatherKv, any KV dtype); then per block of
 * query tokens, for each query head those KV heads serve:
 *   scores [m, keys] = scale * q [m, headDim] @ k [keys, headDim]^T   (sgemm, q read in place)
 *   p = softmax over each row's causal / window range                  (softmaxCausal, the pool)
 *   out [m, headDim] = p [m, keys] @ v [keys, headDim]                  (sgemm, out written in place)
 * A block's key span ends at its last token, so the upper triangle of the square is skipped
 * but for the block's own diagonal.
 *
 * Why: the flash-style WASM kernel (assembly/attention.ts) scores with SIMD128 dot products
 * at ~12 GFLOP/s on one thread (f32 cache; less where it widens f16 keys per tile), while
 * sgemm runs these products at 4x that: 512 tokens of Llama-110M's 12 heads, 1 thread,
 * 16.2 against 25.8 ms a layer (f32 cache), 20.3 against 40.3 ms (f16; bench/cpu-attention.ts
 * --ab). The other sequences of the step (decodes, short chunks) stay with the WASM kernel,
 * which skips these (its AT_SKIP word), so the two write disjoint rows of out.
 */
import type { AttentionGeometry } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import type { Blas } from "./blas.js";
import { OP } from "./program.js";
import type { CpuRuntime } from "./runtime.js";
import type { StepData } from "./step-data.js";

/** Fewest query tokens of one sequence in a step for the BLAS path (below, the WASM kernel's tiles do as well). */
export const BLAS_ATTENTION_MIN_TOKENS = 64;
/** Query tokens a block: sgemm's rows; more would score more of the masked upper triangle. */
const QUERY_BLOCK = 128;
/** Keys from which this path beats the WASM kernel on more than one thread (pays()). */
const MANY_KEYS = 256;
/** f32 values of a block's scores (every query head of the gathered KV heads), 8 MiB: fewer query rows a block where heads x keys are many. */
const SCORE_FLOATS = 1 << 21;
/** f32 values of the gathered keys and values, 16 MiB: fewer KV heads a gather where the context is long. */
const GATHER_FLOATS = 1 << 22;

export interface BlasAttentionCall {
  step: StepBatch;
  data: StepData;
  /** q [T, heads * headDim] (rotated) and out [T, heads * headDim]: heap pointers. */
  q: number;
  out: number;
  /** This layer's K and V planes (heap pointers; row layout assembly/kv.ts). */
  cache: { k: number; v: number };
  geometry: AttentionGeometry;
  /** KV_DTYPE_CODE of the cache. */
  kvDtype: number;
  blockSize: number;
  threads: number;
}

export class BlasAttention {
  /** Grow-only heap buffer for the gathered K, V and the scores. */
  private buf = { ptr: 0, floats: 0 };
  /** Sequences this path has attended for, over all steps and layers (tests, profiles). */
  sequencesRun = 0;

  constructor(
    private readonly blas: Blas,
    private readonly rt: CpuRuntime,
    /** Fewest query tokens of a sequence for this path. */
    readonly minTokens = BLAS_ATTENTION_MIN_TOKENS,
  ) {}

  /**
   * Whether this path pays for the step's long sequences on `threads` threads. On one thread
   * it does from 64 query tokens. On more, sgemm's small products split worse than the WASM
   * kernel's tiles, which win up to ~128 keys: bench/cpu-attention.ts --ab, 2 threads, f32 /
   * f16 cache, WASM against BLAS ms: 128 tokens 1.27 / 1.97 against 1.74 / 3.03; 256 tokens
   * 6.57 / 5.55 against 6.15 / 4.70; 512 tokens 19.3 / 22.7 against 16.3 / 14.0.
   */
  pays(step: StepBatch, threads: number): boolean {
    if (threads <= 1) return true;
    for (let s = 0; s < step.seqStarts.length - 1; s++) {
      if (this.takes(step, s) && step.positions[step.seqStarts[s + 1] - 1] + 1 >= MANY_KEYS) return true;
    }
    return false;
  }

  /** Whether sequence s of the step is this path's (by its token count). */
  takes(step: StepBatch, s: number): boolean {
    return step.seqStarts[s + 1] - step.seqStarts[s] >= this.minTokens;
  }

  /** out for every sequence of the step that takes(); the cache already holds the step's keys and values. */
  run(c: BlasAttentionCall): void {
    const S = c.step.seqStarts.length - 1;
    for (let s = 0; s < S; s++) {
      if (!this.takes(c.step, s)) continue;
      this.sequence(c, s);
      this.sequencesRun++;
    }
  }

  private sequence(c: BlasAttentionCall, s: number): void {
    const { step, geometry: g } = c;
    const hd = g.headDim;
    const qDim = g.numHeads * hd;
    const group = g.numHeads / g.numKvHeads;
    const a = step.seqStarts[s];
    const b = step.seqStarts[s + 1];
    const pos = (t: number) => step.positions[t];
    const firstKey = (p: number) => (g.slidingWindow ? Math.max(0, p - g.slidingWindow + 1) : 0);
    const k0 = firstKey(pos(a));
    const keys = pos(b - 1) + 1 - k0;
    const kvPerGather = Math.max(1, Math.min(g.numKvHeads, Math.floor(GATHER_FLOATS / (2 * keys * hd))));
    const heads = kvPerGather * group; // query heads a gather serves, scored together
    const bq = Math.max(16, Math.min(QUERY_BLOCK, Math.floor(SCORE_FLOATS / (heads * keys))));
    const gathered = kvPerGather * keys * hd; // floats of K (and of V)
    const base = this.buffer(2 * gathered + heads * bq * keys);
    const kBuf = base, vBuf = base + gathered * 4, sBuf = base + 2 * gathered * 4;
    const heap = this.rt.heap;
    const p = this.rt.program;
    const qAll = heap.f32(c.q, step.numTokens * qDim);
    const outAll = heap.f32(c.out, step.numTokens * qDim);
    for (let h0 = 0; h0 < g.numKvHeads; h0 += kvPerGather) {
      const nKvh = Math.min(kvPerGather, g.numKvHeads - h0);
      p.reset().emit(OP.GATHER_KV, kBuf, vBuf, c.cache.k, c.cache.v, c.data.table(s), k0, keys, h0, nKvh, hd, g.numKvHeads, c.blockSize, c.kvDtype);
      this.rt.run(c.threads);
      const kAll = heap.f32(kBuf, nKvh * keys * hd);
      const vAll = heap.f32(vBuf, nKvh * keys * hd);
      const scores = heap.f32(sBuf, heads * bq * keys);
      for (let r0 = a; r0 < b; r0 += bq) {
        const m = Math.min(bq, b - r0);
        // this block's keys: from its first token's first visible key to its last token
        const j0 = firstKey(pos(r0)) - k0;
        const n = pos(r0 + m - 1) + 1 - k0 - j0;
        const nh = nKvh * group; // scores [nh, m, n]: query head h0 * group + i at i
        for (let i = 0; i < nh; i++) {
          const h = h0 * group + i;
          const kv = (Math.floor(i / group) * keys + j0) * hd;
          this.blas.gemmStrided(true, m, n, hd, g.scale, qAll.subarray(r0 * qDim + h * hd), qDim, kAll.subarray(kv), hd, scores.subarray(i * m * n), n, 0, c.threads);
        }
        p.reset().emit(OP.SOFTMAX_CAUSAL, sBuf, nh * m, m, n, c.data.field("positions") + r0 * 4, k0 + j0, g.slidingWindow ?? 0);
        this.rt.run(c.threads);
        for (let i = 0; i < nh; i++) {
          const h = h0 * group + i;
          const kv = (Math.floor(i / group) * keys + j0) * hd;
          this.blas.gemmStrided(false, m, hd, n, 1, scores.subarray(i * m * n), n, vAll.subarray(kv), hd, outAll.subarray(r0 * qDim + h * hd), qDim, 0, c.threads);
        }
      }
    }
    p.reset();
  }

  /** A heap region of at least `floats` f32 values (grown by doubling: the heap never frees). */
  private buffer(floats: number): number {
    if (floats > this.buf.floats) {
      const n = Math.max(floats, 2 * this.buf.floats);
      this.buf = { ptr: this.rt.heap.alloc(n * 4, "BLAS attention buffers"), floats: n };
    }
    return this.buf.ptr;
  }
}

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
 *
 * On several threads, sgemm's small products split badly across OpenBLAS's threads, so this
 * thread runs them on one while the pool's workers run each block's softmax meanwhile
 * (pool.start / join): block x's softmax beside block x-1's p.v and block x+1's scores, the
 * scores of two blocks in turn in two buffers (2 threads, 512 tokens, f16 cache: 15.6 ms
 * against the WASM kernel's 23.8; 2 OpenBLAS threads and the softmax on both: 14.0 against 22.7).
 */
import type { AttentionGeometry } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import type { Blas } from "./blas.js";
import { F_NOBAR, OP } from "./program.js";
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

  /** How many sequences of the step this path attends for on `threads` threads (0 where it does not pay). */
  sequencesOf(step: StepBatch, threads: number): number {
    if (!this.pays(step, threads)) return 0;
    let n = 0;
    for (let s = 0; s < step.seqStarts.length - 1; s++) if (this.takes(step, s)) n++;
    return n;
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
    const sFloats = heads * bq * keys; // one block's scores; two, used in turn
    const base = this.buffer(2 * gathered + 2 * sFloats);
    const kBuf = base, vBuf = base + gathered * 4, sBufs = [base + 2 * gathered * 4, base + (2 * gathered + sFloats) * 4];
    const heap = this.rt.heap;
    const p = this.rt.program;
    const qAll = heap.f32(c.q, step.numTokens * qDim);
    const outAll = heap.f32(c.out, step.numTokens * qDim);
    // several threads: the workers run each block's softmax while this thread runs the sgemms
    // of its neighbours on one BLAS thread (small products split badly across threads)
    const overlap = c.threads > 1;
    const gemmThreads = overlap ? 1 : c.threads;
    const blocks: { r0: number; m: number; j0: number; n: number }[] = [];
    for (let r0 = a; r0 < b; r0 += bq) {
      const m = Math.min(bq, b - r0);
      // this block's keys: from its first token's first visible key to its last token
      const j0 = firstKey(pos(r0)) - k0;
      blocks.push({ r0, m, j0, n: pos(r0 + m - 1) + 1 - k0 - j0 });
    }
    for (let h0 = 0; h0 < g.numKvHeads; h0 += kvPerGather) {
      const nKvh = Math.min(kvPerGather, g.numKvHeads - h0);
      p.reset().emit(OP.GATHER_KV, kBuf, vBuf, c.cache.k, c.cache.v, c.data.table(s), k0, keys, h0, nKvh, hd, g.numKvHeads, c.blockSize, c.kvDtype);
      this.rt.run(c.threads);
      const kAll = heap.f32(kBuf, nKvh * keys * hd);
      const vAll = heap.f32(vBuf, nKvh * keys * hd);
      const nh = nKvh * group; // scores [nh, m, n]: query head h0 * group + i at i
      const kvOf = (i: number, j0: number) => (Math.floor(i / group) * keys + j0) * hd;
      const scores = (x: number) => heap.f32(sBufs[x % 2], sFloats);
      const qk = (x: number) => {
        const { r0, m, j0, n } = blocks[x];
        const sc = scores(x);
        for (let i = 0; i < nh; i++) this.blas.gemmStrided(true, m, n, hd, g.scale, qAll.subarray(r0 * qDim + (h0 * group + i) * hd), qDim, kAll.subarray(kvOf(i, j0)), hd, sc.subarray(i * m * n), n, 0, gemmThreads);
      };
      const pv = (x: number) => {
        const { r0, m, j0, n } = blocks[x];
        const sc = scores(x);
        for (let i = 0; i < nh; i++) this.blas.gemmStrided(false, m, hd, n, 1, sc.subarray(i * m * n), n, vAll.subarray(kvOf(i, j0)), hd, outAll.subarray(r0 * qDim + (h0 * group + i) * hd), qDim, 0, gemmThreads);
      };
      // block x's softmax (on the workers alone where overlapping), beside block x - 1's p.v and
      // block x + 1's scores (into x - 1's buffer, read just before)
      qk(0);
      for (let x = 0; x < blocks.length; x++) {
        const { r0, m, j0, n } = blocks[x];
        p.reset().emit(OP.SOFTMAX_CAUSAL | F_NOBAR, sBufs[x % 2], nh * m, m, n, c.data.field("positions") + r0 * 4, k0 + j0, g.slidingWindow ?? 0, overlap ? 1 : 0);
        if (overlap) this.rt.start(c.threads);
        else this.rt.run(c.threads);
        try {
          if (x > 0) pv(x - 1);
          if (x + 1 < blocks.length) qk(x + 1);
        } finally {
          if (overlap) this.rt.join();
        }
      }
      pv(blocks.length - 1);
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

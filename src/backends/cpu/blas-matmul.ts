/**
 * Matmuls the CPU backend hands to a system BLAS (blas.ts) instead of its WASM kernels:
 * those with enough rows of x that sgemm's register-blocked AVX kernels beat SIMD128
 * (prefill, batched decode). They run on the calling thread between the pool's program
 * segments, like the collectives (backend.ts).
 *
 * f32 weights go to sgemm as they lie in the heap. bf16 / fp16 weights are widened a
 * row block at a time into one f32 buffer by the pool (assembly/widen.ts), then that
 * block's columns of out are computed: the widening costs one pass over the weights,
 * which many rows of x amortize, so 16-bit weights need more rows than f32 to gain.
 * Packed int8 / int4 weights are dequantized the same way (qmatmul.ts's row dequantizer,
 * either q layout), from the row count where their own kernels dequantize too (prefill);
 * w8a8 also puts x on its per-token int8 grid first (src/quant/w8a8.ts's rounding).
 *
 * A model whose f32 matrices do not fit WebAssembly's 4 GiB keeps them outside the heap
 * (tensors.ts `external`): those matmuls come here at any row count (one row: sgemv).
 */
import type { Blas } from "./blas.js";
import { DTYPE_CODE, OP } from "./program.js";
import type { CpuRuntime } from "./runtime.js";
import type { WeightSlot } from "./tensors.js";

/**
 * The default row thresholds: crossovers measured with bench/cpu-blas.ts (Llama-110M layer shapes,
 * 2-core AMD EPYC, OpenBLAS 0.3.21) against the WASM kernels' few-token path (2..11 rows): f32 from
 * 8 rows (WASM 1.1-1.3x faster at 6, BLAS 1.3-1.8x at 8 on one thread, even at 8 on two); 16-bit
 * from 8 rows on one thread (BLAS 1.04-1.5x at 8), 12 on more (WASM 1.2-1.8x at 10 on two: OpenBLAS
 * splits small products badly).
 */
const MIN_ROWS_F32 = 8;
const minRows16For = (threads: number) => (threads <= 1 ? 8 : 12);

export interface BlasMatmulOptions {
  /** Fewest rows of x for which f32 weights go to BLAS (default 8). */
  minRows?: number;
  /** Fewest rows of x for which bf16 / fp16 weights go to BLAS (default 8 on one thread, else 12). */
  minRows16?: number;
  /** Fewest rows of x for which packed int8 / int4 weights go to BLAS (default 16). */
  minRowsPacked?: number;
  /** Bytes of the f32 buffer one block of widened 16-bit rows fills (default 4 MiB). */
  blockBytes?: number;
}

export class BlasMatmul {
  private readonly minRows: number;
  private readonly minRows16: number | undefined;
  private readonly minRowsPacked: number;
  /** The widened block: [blockRows, K] f32, sized for the widest 16-bit or packed weight. */
  private block = 0;
  private blockFloats = 0;
  /** w8a8 prefill: the tokens on their int8 grid [M, K] f32, grown to the largest step seen. */
  private grid = { ptr: 0, floats: 0 };
  /** The widest row of a 16-bit or packed weight. */
  private maxK = 0;

  constructor(
    readonly blas: Blas,
    private readonly rt: CpuRuntime,
    weights: Iterable<WeightSlot>,
    o: BlasMatmulOptions = {},
  ) {
    this.minRows = o.minRows ?? MIN_ROWS_F32;
    this.minRows16 = o.minRows16;
    this.minRowsPacked = o.minRowsPacked ?? 16;
    let maxK = 0;
    for (const w of weights) if (w.dtype !== "f32" && w.shape.length === 2) maxK = Math.max(maxK, w.shape[1]);
    this.maxK = maxK;
    if (maxK > 0) {
      this.blockFloats = Math.max(maxK, Math.floor((o.blockBytes ?? 4 << 20) / 4 / maxK) * maxK);
      this.block = rt.heap.alloc(this.blockFloats * 4, "widened weight block (BLAS)");
    }
  }

  /** Whether a matmul over `rows` rows of x with weight w, on `threads` threads, goes to BLAS. */
  takes(w: WeightSlot, rows: number, threads = 1): boolean {
    if (w.external) return true; // nothing else can read it
    if (w.shape.length !== 2) return false;
    if (w.dtype === "f32") return rows >= this.minRows;
    return this.block !== 0 && rows >= (w.packed ? this.minRowsPacked : (this.minRows16 ?? minRows16For(threads)));
  }

  /**
   * out [M, N] = x [M, K] @ w [N, K]^T (+ bias [N]) on `threads` threads; the pool must be
   * idle and its program empty (this runs widening programs of its own).
   */
  run(w: WeightSlot, x: Float32Array, out: Float32Array, bias: Float32Array | undefined, M: number, threads: number): void {
    const [N, K] = w.shape;
    let beta = 0;
    if (bias) {
      for (let m = 0; m < M; m++) out.set(bias, m * N);
      beta = 1;
    }
    if (w.dtype === "f32") {
      const wf = w.external ?? this.rt.heap.f32(w.ptr, N * K);
      if (M === 1) this.blas.sgemv(N, K, wf, x, out, beta, threads);
      else this.blas.sgemm(M, N, K, x, wf, out, N, beta, threads);
      return;
    }
    // w8a8: the tokens on their int8 grid first, so sgemm sums the products the integer
    // kernel does (each rounded to f32, in sgemm's order)
    if (w.packed?.dtype === "w8a8") x = this.quantizeRowsInt8(x, M, K, threads);
    const rows = Math.floor(this.blockFloats / K); // the buffer holds a whole number of rows at every K up to the widest
    const block = this.rt.heap.f32(this.block, this.blockFloats);
    const p = this.rt.program;
    for (let n0 = 0; n0 < N; n0 += rows) {
      const n1 = Math.min(N, n0 + rows);
      const q = w.packed;
      if (q) p.reset().emit(OP.DEQUANT_ROWS, this.block, w.ptr, q.scales, q.zeros, q.code, q.groupSize, K, n0, n1);
      else p.reset().emit(OP.WIDEN_ROWS, this.block, w.ptr, DTYPE_CODE[w.dtype as "bf16" | "f16"], K, n0, n1, N, w.colBlock ?? 0);
      this.rt.run(threads);
      this.blas.sgemm(M, n1 - n0, K, x, block, out.subarray(n0), N, beta, threads);
    }
    p.reset();
  }

  /** x [M, K] (a view of the heap, as every activation is) on its per-token int8 grid, into a buffer of this matmul's (OP.QUANT_ROWS_I8). */
  private quantizeRowsInt8(x: Float32Array, M: number, K: number, threads: number): Float32Array {
    // sized for the widest row, so only a step with more rows than any before allocates (the heap does not free)
    if (this.grid.floats < M * K) this.grid = { ptr: this.rt.heap.alloc(M * this.maxK * 4, "w8a8 tokens on their int8 grid (BLAS)"), floats: M * this.maxK };
    this.rt.program.reset().emit(OP.QUANT_ROWS_I8, this.grid.ptr, x.byteOffset, M, K);
    this.rt.run(threads);
    return this.rt.heap.f32(this.grid.ptr, M * K);
  }
}

/**
 * The CPU backend: WebAssembly SIMD kernels run by a pool of threads over one shared
 * memory. bind() packs the weights (row-major, f32 / bf16 / fp16 as built), allocates
 * the paged KV cache (f32, f16 / bf16 rounded on write, or int8 with a scale per head and
 * slot: assembly/kv.ts) and the activation arena; forward() writes the step into shared
 * memory, turns the graph into one program of kernel calls and runs it with a single
 * wake-up of the pool. A sharded rank's graph has collective ops: its program is split
 * at each (host-ops.ts), which runs on the calling thread between the pool's segments.
 */
import { kvRowBytes, refuseFp8Kv, type Backend, type BoundGraph, type HalfWeightMap, type KvCacheShape, type PackedWeightMap, type WeightMap } from "../backend.js";
import { opInputs, type Graph } from "../../graph/ir.js";
import type { MemoryPlan } from "../../graph/passes/plan-memory.js";
import type { StepBatch } from "../../graph/step-batch.js";
import type { Collectives } from "../collectives.js";
import { systemBlas, type Blas } from "./blas.js";
import { BlasMatmul, type BlasMatmulOptions } from "./blas-matmul.js";
import { BLAS_ATTENTION_MIN_TOKENS, BlasAttention } from "./blas-attention.js";
import { emitOp, rows, type EmitContext } from "./emit.js";
import { isHostOp, runHostOp } from "./host-ops.js";
import { HEAP_LIMIT_BYTES } from "./heap.js";
import { CPU_PACKED_DTYPES, packedSlotBytes } from "./packed.js";
import { KV_DTYPE_CODE } from "./program.js";
import { CpuRuntime, defaultThreads } from "./runtime.js";
import { StepData } from "./step-data.js";
import { TensorTable } from "./tensors.js";
import type { KernelModule, SimdLevel } from "./wasm-module.js";

export interface CpuBackendOptions {
  /** Threads, the caller's included (default: $LLMRT_THREADS, else all cores). */
  threads?: number;
  /** Force the plain SIMD128 kernels (default: relaxed SIMD where the runtime has it). */
  simd?: SimdLevel;
  /** Steps with fewer multiply-adds than this run on one thread (barriers would cost more); default 2^20. */
  parallelMacs?: number;
  /** Spin iterations before a waiting thread sleeps (default: the pool's). */
  spin?: number;
  /** Time every op separately (one wake-up per op: slower), for CpuBound.opTimes. */
  profile?: boolean;
  /** The compiled kernels (default: this process's, compiled once). */
  kernels?: KernelModule;
  /** The other ranks, for a sharded graph's collective ops (parallel/); without it a collective over one rank is a copy. */
  comm?: Collectives;
  /** The BLAS for big matmuls: false for WASM kernels only (default: systemBlas(), per LLMRT_BLAS). */
  blas?: Blas | false;
  /** When matmuls go to BLAS (rows thresholds, block size). */
  blasMatmul?: BlasMatmulOptions;
  /** Fewest query tokens of a sequence for which prefill attention goes to BLAS (blas-attention.ts; default 64); false: the WASM kernel always. */
  blasAttention?: number | false;
  /** Keep f32 matrices that only matmuls read outside the WebAssembly heap, for BLAS (default: only when the model would not fit its 4 GiB). */
  externalWeights?: boolean;
  /** Store 16-bit matrices with rows over 4096 values in column blocks (layout.ts; default true; false: all row-major, for A / B benchmarks). */
  colBlocks?: boolean;
  /** Place int4 (groups of a multiple of 32) in the lanes layout where the relaxed build runs (packed.ts; default true; false: the 4-row interleaved layout, for A / B benchmarks). */
  packedLanes?: boolean;
  /** Ask Linux for transparent huge pages over the backend's memory (default true; LLMRT_HUGEPAGES=0 or false: 4 KiB pages, for A / B benchmarks). */
  hugePages?: boolean;
}

let processThreads: number | undefined;

/** Sets the thread count of CPU backends created without one (the CLI's --threads). */
export function setDefaultCpuThreads(n: number | undefined): void {
  processThreads = n;
}

export function resolveThreads(n?: number): number {
  const env = Number(process.env.LLMRT_THREADS);
  return Math.max(1, Math.floor(n ?? processThreads ?? (env > 0 ? env : defaultThreads())));
}

export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly threads: number;
  readonly packedDTypes = CPU_PACKED_DTYPES;
  /** bf16 / fp16 matrices are stored as they come (layout.ts): the loader need not widen them. */
  readonly halfDTypes = ["bf16", "f16"] as const;

  constructor(private readonly opts: CpuBackendOptions = {}) {
    this.threads = resolveThreads(opts.threads);
  }

  bind(graph: Graph, weights: WeightMap, kv: KvCacheShape, plan?: MemoryPlan, packed?: PackedWeightMap, halves?: HalfWeightMap): CpuBound {
    refuseFp8Kv(kv, "cpu");
    return new CpuBound(graph, weights, kv, plan, this.threads, this.opts, packed, halves);
  }
}

/** Weights read by matmuls and by nothing else (an embedding table shared with a tied head stays in the heap). */
function matmulOnlyWeights(graph: Graph): Set<string> {
  const out = new Set<string>();
  const elsewhere = new Set<string>();
  for (const op of graph.ops) {
    if (op.op === "matmul") out.add(op.w);
    else for (const name of opInputs(op)) elsewhere.add(name);
  }
  for (const name of elsewhere) out.delete(name);
  return out;
}

const closer = new FinalizationRegistry<CpuRuntime>((rt) => rt.close());

export class CpuBound implements BoundGraph {
  readonly kvBytes: number;
  readonly rt: CpuRuntime;
  /** Bytes of one slot's row of one K or V plane (int8: its head scales included). */
  private readonly kvRow: number;
  private readonly tensors: TensorTable;
  private readonly cache: { k: number; v: number }[] = [];
  private step: StepData;
  /** Multiply-adds per token through the weights (to pick the thread count of a step). */
  private readonly macsPerToken: number;
  /** The matmuls a system BLAS runs, where there is one. */
  readonly blas?: BlasMatmul;
  /** Prefill attention of long sequences, where there is a BLAS. */
  readonly blasAttention?: BlasAttention;
  /** With `profile`: milliseconds spent in each op kind, summed over steps. */
  readonly opTimes = new Map<string, number>();

  constructor(
    private readonly graph: Graph,
    weights: WeightMap,
    readonly kv: KvCacheShape,
    plan: MemoryPlan | undefined,
    threads: number,
    private readonly opts: CpuBackendOptions = {},
    packed: PackedWeightMap = new Map(),
    halves: HalfWeightMap = new Map(),
  ) {
    const slots = kv.numBlocks * kv.blockSize;
    const kvDim = kv.numKvHeads * kv.headDim;
    this.kvRow = kvRowBytes(kv.dtype ?? "f32", kv.numKvHeads, kv.headDim);
    this.kvBytes = 2 * kv.numLayers * slots * this.kvRow;
    let weightBytes = 0;
    for (const w of weights.values()) weightBytes += w.byteLength; // f32: an upper bound where matrices pack to 16 bits
    for (const p of packed.values()) weightBytes += packedSlotBytes(p);
    for (const h of halves.values()) weightBytes += h.bits.byteLength; // (an fp16 matrix with non-finite values goes in as f32: the memory grows for it)
    const blas = opts.blas === false ? undefined : (opts.blas ?? systemBlas());
    // past WebAssembly's 4 GiB, f32 matrices only matmuls read stay outside (BLAS reads them there)
    const tooBig = weightBytes + this.kvBytes + (plan?.arenaBytes ?? 0) > HEAP_LIMIT_BYTES - (256 << 20);
    const external = blas && (opts.externalWeights ?? tooBig) ? matmulOnlyWeights(graph) : new Set<string>();
    for (const name of external) weightBytes -= weights.get(name)?.byteLength ?? 0;
    // scratch per thread: rope angles, an attention unit's tiles (~41 KiB whatever the context:
    // assembly/attention.ts), a matmul's quantized tokens, or the fp16 rows a prefill matmul widens (256 KB)
    const scratchBytes = 4096 + Math.max(kvDim * 4, 256 << 10);
    this.rt = new CpuRuntime({ threads, simd: opts.simd, spin: opts.spin, kernels: opts.kernels, hugePages: opts.hugePages, scratchBytes, reserveBytes: weightBytes + this.kvBytes + (plan?.arenaBytes ?? 0) + (1 << 20) });
    closer.register(this, this.rt);
    try {
      this.tensors = new TensorTable(this.rt.heap, graph, weights, plan, packed, external, opts.colBlocks ?? true, (opts.packedLanes ?? true) && this.rt.simd === "relaxed", halves);
      for (let l = 0; l < kv.numLayers; l++) {
        this.cache.push({ k: this.rt.heap.alloc(slots * this.kvRow, "KV cache"), v: this.rt.heap.alloc(slots * this.kvRow, "KV cache") });
      }
      const cap = this.tensors.capacity;
      this.step = StepData.withCapacity(this.rt.heap, { T: cap.T, S: Math.min(cap.T, 64), R: cap.R, blocks: Math.min(kv.numBlocks, 256) });
    } catch (e) {
      this.rt.close();
      throw e;
    }
    let macs = 0;
    for (const w of this.tensors.weights.values()) if (w.shape.length === 2) macs += w.shape[0] * w.shape[1];
    this.macsPerToken = macs;
    if (blas) this.blas = new BlasMatmul(blas, this.rt, this.tensors.weights.values(), opts.blasMatmul);
    if (blas && opts.blasAttention !== false) this.blasAttention = new BlasAttention(blas, this.rt, opts.blasAttention ?? BLAS_ATTENTION_MIN_TOKENS);
  }

  /** Bytes of packed weights (what one decode step reads). */
  get weightBytes(): number {
    return this.tensors.weightBytes();
  }

  /** How a weight is stored (f32, bf16, f16, int8, int4). */
  packedDType(name: string): string | undefined {
    return this.tensors.weights.get(name)?.dtype;
  }

  /** Columns per block of a matrix stored in column blocks (layout.ts inColBlocks); undefined: row-major. */
  colBlock(name: string): number | undefined {
    return this.tensors.weights.get(name)?.colBlock;
  }

  /** Whether a weight lives outside the heap (read by BLAS only). */
  isExternal(name: string): boolean {
    return this.tensors.weights.get(name)?.external !== undefined;
  }

  get threads(): number {
    return this.rt.threads;
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    const cap = { T: step.numTokens, R: step.logitRows.length };
    this.tensors.ensure(cap.T, cap.R);
    if (!this.step.fits(step)) this.step = StepData.forStep(this.rt.heap, step);
    this.step.write(step);
    const p = this.rt.program.reset();
    const nth = this.macsPerToken * cap.T < (this.opts.parallelMacs ?? 1 << 20) ? 1 : this.rt.threads;
    const kvDtype = KV_DTYPE_CODE[this.kv.dtype ?? "f32"];
    const longSeqs = this.blasAttention?.sequencesOf(step, nth) ?? 0;
    const ctx: EmitContext = {
      graph: this.graph,
      tensors: this.tensors,
      step: this.step,
      cap,
      cache: this.cache,
      kvDtype,
      kvHeadDim: this.kv.headDim,
      blockSize: this.kv.blockSize,
      attentionSkip: longSeqs > 0 ? this.blasAttention!.minTokens : 0,
      wasmAttention: longSeqs < step.seqStarts.length - 1,
    };
    const host = { heap: this.rt.heap, tensors: this.tensors, cap, ids: step.tokenIds.subarray(0, cap.T), comm: this.opts.comm };
    const flush = () => {
      if (p.length > 0) this.rt.run(nth);
      p.reset();
    };
    for (const op of this.graph.ops) {
      const t = this.opts.profile ? performance.now() : 0;
      if (isHostOp(op)) {
        flush(); // it reads what the calls before it wrote
        runHostOp(op, host);
      } else if (op.op === "matmul" && this.blasTakes(op.w, rows(ctx, op.x), nth)) {
        flush();
        this.blasMatmul(op, ctx, nth);
      } else if ((op.op === "attention" || op.op === "attention_qkv") && longSeqs > 0) {
        emitOp(p, op, ctx); // the prep (K/V into the cache) and the WASM kernel's sequences
        flush();
        this.blasAttention!.run({ step, data: this.step, q: this.tensors.ptr(op.q), out: this.tensors.ptr(op.out), cache: this.cache[op.layer], geometry: op, kvDtype: ctx.kvDtype, blockSize: this.kv.blockSize, threads: nth });
      } else emitOp(p, op, ctx);
      if (!this.opts.profile) continue;
      flush();
      this.opTimes.set(op.op, (this.opTimes.get(op.op) ?? 0) + performance.now() - t);
    }
    flush();
    // copies: the arena is overwritten by the next step
    return new Map(this.graph.outputs.map((o) => [o, this.tensors.view(o, cap).slice()]));
  }

  private blasTakes(weight: string, x: number, threads: number): boolean {
    const w = this.tensors.weights.get(weight);
    return this.blas !== undefined && w !== undefined && this.blas.takes(w, x, threads);
  }

  private blasMatmul(op: Extract<Graph["ops"][number], { op: "matmul" }>, c: EmitContext, nth: number): void {
    const w = this.tensors.weights.get(op.w)!;
    const view = (name: string) => this.tensors.view(name, c.cap);
    this.blas!.run(w, view(op.x), view(op.out), op.bias ? this.rt.heap.f32(this.tensors.ptr(op.bias), w.shape[0]) : undefined, rows(c, op.x), nth);
  }

  copyBlock(src: number, dst: number): void {
    const n = this.kv.blockSize * this.kvRow; // a block's rows, int8 scales included
    const mem = this.rt.heap.u8(0, this.rt.heap.used);
    for (const { k, v } of this.cache) {
      mem.copyWithin(k + dst * n, k + src * n, k + (src + 1) * n);
      mem.copyWithin(v + dst * n, v + src * n, v + (src + 1) * n);
    }
  }

  /** Stops the worker threads now (they also stop when this object is collected). */
  close(): void {
    closer.unregister(this);
    this.rt.close();
  }
}

/**
 * An engine: a model's optimized graph bound to a backend, with its weights loaded, its
 * activation arena planned and its paged KV cache allocated. The runtime hands it
 * StepBatches and reads logits back.
 *
 *   Engine.load(dir)              a built engine dir: reads tensors by range, no passes
 *   Engine.fromCheckpoint(ckpt)   builds in memory (same passes), for tests and tools
 */
import type { Backend, BoundGraph, KvCacheShape, KvDType, WeightMap } from "../backends/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Checkpoint } from "../checkpoint/types.js";
import { EngineError } from "../errors.js";
import type { Graph } from "../graph/ir.js";
import type { MemoryPlan } from "../graph/passes/plan-memory.js";
import type { StepBatch } from "../graph/step-batch.js";
import { LOGITS } from "../models/llama.js";
import { planEngine } from "./build.js";
import { loadEngineDir, type LoadEngineOptions } from "./load.js";
import { resolveBuildOptions, type DTypeChoice } from "./options.js";
import type { BuildReport } from "./report.js";
import { targetByName } from "./targets.js";
import { materializeWeight, roundTrip, storageDType } from "./weights.js";

export interface EngineOptions {
  backend?: Backend;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** Longest sequence the engine serves (default: the model's context, at most 4096). */
  maxSeqLen?: number;
  /** Sequences resident in the KV cache at once (default 1). */
  maxSeqs?: number;
  /** KV blocks to allocate; default enough for maxSeqs sequences of maxSeqLen. */
  numBlocks?: number;
  /** Most tokens per step (default max(512, maxSeqLen)). */
  maxBatchTokens?: number;
  /** Most logit rows per step (default maxBatchTokens: every row may want logits). */
  maxLogitRows?: number;
  /** Weight storage precision, applied by rounding (default auto: see options.ts autoDType). */
  dtype?: DTypeChoice;
  /** Run the optimizing passes (default true); false binds the model's plain graph. */
  optimize?: boolean;
  /** KV cache storage type (default f32); attention computes in f32 either way. */
  kvDtype?: KvDType;
}

/** A step in flight (Engine.submit): wait() blocks until its logits [R, vocab] are ready. */
export interface PendingLogits {
  wait(): Float32Array;
}

/** What the engine was built to handle; a step beyond these is refused. */
export interface EngineLimits {
  maxBatchTokens: number;
  maxLogitRows: number;
  maxSeqs: number;
  /** Where the engine came from, for error messages ("in-memory build" or its dir). */
  origin: string;
}

export class Engine {
  constructor(
    readonly config: ModelConfig,
    readonly graph: Graph,
    private readonly bound: BoundGraph,
    readonly maxSeqLen: number,
    readonly limits: EngineLimits = { maxBatchTokens: Infinity, maxLogitRows: Infinity, maxSeqs: Infinity, origin: "engine" },
    readonly report?: BuildReport,
  ) {}

  get kv(): KvCacheShape {
    return this.bound.kv;
  }

  get kvBytes(): number {
    return this.bound.kvBytes;
  }

  get maxBatchTokens(): number {
    return this.limits.maxBatchTokens;
  }

  get maxSeqs(): number {
    return this.limits.maxSeqs;
  }

  /** Runs one step; returns logits [R, vocab] for step.logitRows. */
  forward(step: StepBatch): Float32Array {
    this.checkStep(step);
    return this.bound.forward(step).get(LOGITS)!;
  }

  /**
   * Steps this engine can run at once, each a different batch (pipeline stages working on
   * different steps: a sharded engine with --pp > 1); 1 for every other engine. The
   * runtime then keeps that many independent step groups in flight (engine-core.ts).
   */
  get pipelineDepth(): number {
    return 1;
  }

  /** Sequences a step group should hold before the runtime opens the next one (pipelineDepth > 1). */
  get pipelineMinGroupSeqs(): number {
    return 1;
  }

  /**
   * Starts a step and returns a handle whose wait() gives its logits [R, vocab]. Up to
   * pipelineDepth steps may be in flight; wait them in submission order. Here (depth 1)
   * the step runs at once.
   */
  submit(step: StepBatch): PendingLogits {
    const logits = this.forward(step);
    return { wait: () => logits };
  }

  /** Whether forwardGreedy picks tokens where the logits are (a GPU) instead of copying them out. */
  get hasDeviceGreedy(): boolean {
    return this.bound.forwardTopK !== undefined;
  }

  /** Runs one step; returns the argmax token of each logit row [R] (-1: NaN or no finite logit). Needs hasDeviceGreedy. */
  forwardGreedy(step: StepBatch): Int32Array {
    this.checkStep(step);
    if (!this.bound.forwardTopK) throw new EngineError(this.limits.origin, "this backend cannot pick tokens on the device", "use forward() and sample on the host");
    return this.bound.forwardTopK(step, 1).ids;
  }

  protected checkStep(step: StepBatch): void {
    const { maxBatchTokens, maxLogitRows, origin } = this.limits;
    if (step.numTokens > maxBatchTokens) {
      throw new EngineError(origin, `a step of ${step.numTokens} tokens exceeds the engine's maxBatchTokens ${maxBatchTokens}`, `schedule at most ${maxBatchTokens} tokens per step, or rebuild with --max-batch-tokens ${step.numTokens}`);
    }
    if (step.logitRows.length > maxLogitRows) {
      throw new EngineError(origin, `a step wants ${step.logitRows.length} logit rows; the engine was built for ${maxLogitRows}`, `rebuild with --max-logit-rows ${step.logitRows.length} (prompt logprobs need a row per prompt token)`);
    }
  }

  copyBlock(src: number, dst: number): void {
    this.bound.copyBlock(src, dst);
  }

  /** Frees the backend's threads and memory (rank threads, CPU worker pool, GPU memory); the engine cannot run afterwards. */
  close(): void {
    this.bound.close?.();
  }

  /** Why the engine can no longer run (a rank died), or null while it can. */
  failure(): Error | null {
    return this.bound.failure?.() ?? null;
  }

  /** Loads a built engine dir (see load.ts): typed errors for wrong version, target, damage or options. */
  static load(dir: string, opts: LoadEngineOptions = {}): Engine {
    const e = loadEngineDir(dir, opts);
    return new Engine(e.config, e.graph, e.bound, e.maxSeqLen, e.limits, e.report);
  }

  /** Builds in memory with the same passes and memory plan as `llmrt build`, and binds. */
  static fromCheckpoint(ckpt: Checkpoint, opts: EngineOptions = {}): Engine {
    const config = ckpt.config;
    const maxSeqLen = opts.maxSeqLen ?? Math.min(config.maxPositionEmbeddings, 4096);
    const maxSeqs = opts.maxSeqs ?? 1;
    const maxBatchTokens = opts.maxBatchTokens ?? Math.max(512, maxSeqLen);
    const options = resolveBuildOptions(config, { dtype: opts.dtype, maxSeqLen, maxSeqs, maxBatchTokens, maxLogitRows: opts.maxLogitRows ?? maxBatchTokens }, ckpt);
    const plan = planEngine(config, options, opts.optimize === false ? [] : undefined);
    const weights: WeightMap = new Map();
    for (const [name, d] of plan.graph.tensors) {
      if (d.kind === "weight") weights.set(name, roundTrip(materializeWeight(plan.graph, name, ckpt), storageDType(d.shape, options.dtype)));
    }
    const blockSize = opts.blockSize ?? 16;
    const kv: KvCacheShape = {
      numLayers: config.numLayers,
      numBlocks: opts.numBlocks ?? maxSeqs * Math.ceil(maxSeqLen / blockSize),
      blockSize,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      dtype: opts.kvDtype ?? "f32",
    };
    const backend = opts.backend ?? targetByName(options.target).createBackend(undefined, options);
    const limits = { maxBatchTokens, maxLogitRows: options.maxLogitRows, maxSeqs, origin: `${ckpt.path} (in-memory build)` };
    return new Engine(config, plan.graph, backend.bind(plan.graph, weights, kv, plan.memory), maxSeqLen, limits, plan.report);
  }
}

export type { LoadEngineOptions } from "./load.js";
export type { MemoryPlan };

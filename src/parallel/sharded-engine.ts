/**
 * A sharded engine dir run as one Engine: ShardedEngine.start starts tp x pp ranks as
 * worker threads (each loads its own weights file and KV cache) and returns an Engine
 * whose forward() drives them, so EngineCore and everything above run it unchanged.
 *
 *   const engine = await ShardedEngine.start("stories-tp2-pp2");   // 4 rank threads
 *   engine.forward(step);   // blocks until the last stage has the logits
 *   const a = engine.submit(stepA), b = engine.submit(stepB);   // pp 2: both in flight
 *   a.wait(); b.wait();
 *   engine.close();
 */
import { resolveThreads } from "../backends/cpu/backend.js";
import { kernelModule } from "../backends/cpu/wasm-module.js";
import { kernelsDir } from "../backends/cuda/kernel-sources.js";
import { Engine, type LoadEngineOptions, type PendingLogits } from "../engine/engine.js";
import { deserializeGraph, readManifest, type EngineManifest } from "../engine/format.js";
import { EngineError } from "../errors.js";
import { rowsFor } from "../graph/passes/plan-memory.js";
import { SHARDED_TARGETS } from "./layout.js";
import { ncclPlan } from "./nccl-plan.js";
import { commOf } from "./plan.js";
import { RankGroupBound, RankError, type RankStats } from "./rank-group.js";
import type { StepBatch } from "../graph/step-batch.js";
import type { RankInit } from "./rank.js";
import { spawnRanks } from "./spawn.js";
import { stageTimes, type StageTimes } from "./stage-times.js";
import { stepWords } from "./step-codec.js";
import { allocWorld, ERR_AT, ERR_BYTES, failureOf, MAX_PIPELINE_DEPTH, W, WorldMap, type WorldLayout } from "./world.js";

export interface ShardedLoadOptions extends Omit<LoadEngineOptions, "backend"> {
  /**
   * Micro-batches each step is cut into when there are pipeline stages: a number, or
   * "auto" (default): up to the stage count, as many as keep MIN_MICRO_BATCH_TOKENS each.
   */
  microBatches?: number | "auto";
  /**
   * Steps in flight at once (different batches on different stages): a number (1: one step
   * at a time through every stage), or "auto" (default): the stage count (at most
   * MAX_PIPELINE_DEPTH), the runtime opening a second step group only once the first
   * holds MIN_MICRO_BATCH_TOKENS sequences (a smaller group's decode step costs a stage
   * nearly what a full one does). A number opens groups from one sequence.
   */
  pipelineDepth?: number | "auto";
  /** Spin iterations before a waiting thread sleeps (default world.ts DEFAULT_SPIN). */
  spin?: number;
}

/** Whether an engine dir holds a sharded engine (without loading it). */
export function isShardedManifest(m: EngineManifest): boolean {
  return m.parallel !== undefined;
}

function within(dir: string, m: EngineManifest, asked: number | undefined, built: number, flag: string): number {
  if (asked === undefined) return built;
  if (asked > built) throw new EngineError(dir, `asked for ${flag} ${asked}, but the engine was built for ${built}`, `rebuild with --${flag} ${asked}`);
  return asked;
}

/** Sizes of the shared areas, from every rank's collectives at the engine's capacity. */
function worldLayout(m: EngineManifest, T: number, S: number, maxSeqLen: number, blockSize: number, numBlocks: number, depth: number): WorldLayout {
  const p = m.parallel!;
  const cap = { T, R: m.build.maxLogitRows };
  let maxCollective = 1;
  let maxMessage = 1;
  for (const r of p.ranks) {
    for (const c of commOf(deserializeGraph(r.graph))) {
      const floats = (rowsFor(c.rows, cap) * c.bytesPerRow) / 4;
      if (c.op === "send" || c.op === "recv") maxMessage = Math.max(maxMessage, floats);
      else maxCollective = Math.max(maxCollective, c.op === "all_gather" ? cap.R * m.model.vocabSize : floats);
    }
  }
  const blocks = S * (Math.ceil(maxSeqLen / blockSize) + 1);
  return { tp: p.tp, pp: p.pp, maxCollective, maxMessage, logitFloats: cap.R * m.model.vocabSize, stepWords: stepWords(T, S, cap.R, blocks, numBlocks), depth };
}

/** Micro-batches per step ("auto" or a number) where ShardedLoadOptions does not say (LLM.load does not pass it on). */
export const MICRO_BATCHES_ENV = "LLMRT_MICRO_BATCHES";
/** Steps in flight ("auto" or a number) where ShardedLoadOptions does not say (benchmarks and tests through LLM: 1 turns cross-step pipelining off). */
export const PIPELINE_DEPTH_ENV = "LLMRT_PIPELINE_DEPTH";

/**
 * "auto" micro-batches: the fewest tokens a piece may hold, per target. cpu: measured
 * (bench/pipeline.ts; pieces of 8 decode rows lost to whole steps). cuda: unmeasured, from
 * the roofline (a bf16 GEMM under ~256 rows is bound by reading the weights, so a smaller
 * piece costs what the whole step does). reference: its plain loops gain from any cut.
 */
export const MIN_MICRO_BATCH_TOKENS: Record<string, number> = { reference: 1, cpu: 16, cuda: 256 };

const closer = new FinalizationRegistry<RankGroupBound>((g) => g.close());

export class ShardedEngine extends Engine {
  private constructor(
    m: EngineManifest,
    private readonly group: RankGroupBound,
    maxSeqLen: number,
    limits: Engine["limits"],
    private readonly minGroupSeqs: number,
  ) {
    super(m.model, deserializeGraph(m.graph), group, maxSeqLen, limits, m.report);
    closer.register(this, group, this);
  }

  /** Starts the ranks of a sharded engine dir and waits until each has loaded. */
  static async start(dir: string, opts: ShardedLoadOptions = {}): Promise<ShardedEngine> {
    const m = readManifest(dir);
    const p = m.parallel;
    if (!p) throw new EngineError(dir, "not a sharded engine (built without --tp/--pp)", "load it with Engine.load");
    if (!SHARDED_TARGETS.includes(m.target)) throw new EngineError(dir, `sharded engines run on the ${SHARDED_TARGETS.join(", ")} backends; this one is built for "${m.target}"`, "rebuild with --target cpu, cuda or reference");
    const maxSeqs = within(dir, m, opts.maxSeqs, m.build.maxSeqs, "max-seqs");
    const maxSeqLen = within(dir, m, opts.maxSeqLen, m.build.maxSeqLen, "max-seq-len");
    const maxBatchTokens = within(dir, m, opts.maxBatchTokens, m.build.maxBatchTokens, "max-batch-tokens");
    const blockSize = opts.blockSize ?? 16;
    const numBlocks = opts.numBlocks ?? maxSeqs * Math.ceil(maxSeqLen / blockSize);
    const askedDepth = opts.pipelineDepth ?? process.env[PIPELINE_DEPTH_ENV] ?? "auto";
    const fixedDepth = askedDepth === "auto" ? null : Math.floor(Number(askedDepth)) || 1;
    const depth = Math.max(1, Math.min(fixedDepth ?? p.pp, p.pp, MAX_PIPELINE_DEPTH)); // more steps than stages would only queue
    const minGroupSeqs = fixedDepth === null ? (MIN_MICRO_BATCH_TOKENS[m.target] ?? 1) : 1;
    const layout = worldLayout(m, maxBatchTokens, maxSeqs, maxSeqLen, blockSize, numBlocks, depth);
    const map = new WorldMap(layout);
    const buffers = allocWorld(map);
    const ctrl = new Int32Array(buffers.ctrl);
    const asked = opts.microBatches ?? process.env[MICRO_BATCHES_ENV] ?? "auto"; // the env: for benchmarks through LLM
    const fixed = asked === "auto" ? null : Math.max(1, Math.floor(Number(asked)) || 1);
    const microBatches = p.pp > 1 ? (fixed ?? p.pp) : 1;
    const minMicroBatchTokens = fixed === null ? (MIN_MICRO_BATCH_TOKENS[m.target] ?? 1) : 1;
    const fault = process.env.LLMRT_RANK_FAULT; // test hook, see rank.ts
    const world = p.tp * p.pp;
    const threads = Math.max(1, Math.floor(resolveThreads() / world)); // the --threads budget, shared out
    const kernels = m.target === "cpu" ? kernelModule() : undefined;
    const nccl = m.target === "cuda" ? ncclPlan(p.tp, p.pp) : undefined;
    const cudaKernelsDir = m.target === "cuda" ? kernelsDir() : undefined;
    const inits: RankInit[] = p.ranks.map((r) => ({ dir, rank: r.rank, buffers, layout, blockSize, numBlocks, kvDtype: opts.kvDtype ?? "f32", verify: opts.verify ?? true, microBatches, minMicroBatchTokens, spin: opts.spin, threads, kernels, cudaKernelsDir, nccl, fault }));
    const sup = await spawnRanks(inits, ERR_AT, ERR_BYTES);
    const kv = { numLayers: m.model.numLayers, numBlocks, blockSize, numKvHeads: m.model.numKvHeads, headDim: m.model.headDim, dtype: opts.kvDtype ?? "f32" };
    // ranks report through shared memory (a rank that fails to load cannot post a message)
    while (Atomics.load(ctrl, W.READY) < world) {
      const f = failureOf(ctrl);
      if (f) {
        sup.postMessage("quit");
        throw new RankError(f.who, `${dir}: ${f.message}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    sup.unref(); // idle ranks must not keep the process alive
    const group = new RankGroupBound(map, buffers, kv, m.model.vocabSize, sup, opts.spin);
    return new ShardedEngine(m, group, maxSeqLen, { maxBatchTokens, maxLogitRows: m.build.maxLogitRows, maxSeqs, origin: dir }, minGroupSeqs);
  }

  /** Tensor-parallel ranks per stage, and pipeline stages. */
  get parallel(): { tp: number; pp: number } {
    return { tp: this.group.layout.tp, pp: this.group.layout.pp };
  }

  /** Steps that may be in flight at once: the stages, unless loaded with pipelineDepth 1. */
  override get pipelineDepth(): number {
    return this.group.depth;
  }

  /** "auto" depth: the target's MIN_MICRO_BATCH_TOKENS; a fixed depth: 1. */
  override get pipelineMinGroupSeqs(): number {
    return this.minGroupSeqs;
  }

  /** Posts a step to the ranks without waiting; stage 0 starts it while later stages finish earlier ones. */
  override submit(step: StepBatch): PendingLogits {
    this.checkStep(step);
    return this.group.submit(step);
  }

  /** Each rank's time in collectives and steps since load. */
  rankStats(): RankStats[] {
    return this.group.stats();
  }

  /** Per pipeline stage, microseconds busy and idle within the steps run since load. */
  stageTimes(): StageTimes {
    return stageTimes(this.group.stats(), this.group.wallTime(), this.group.layout.tp);
  }

  /** The first rank failure, if any (a failed engine throws it from every forward). */
  override failure(): RankError | null {
    return this.group.failure();
  }

  /** Stops the rank threads; the engine cannot run afterwards. */
  override close(): void {
    closer.unregister(this);
    this.group.close();
  }

  /** Resolves once every rank thread (and their supervisor) has exited after close(). */
  get stopped(): Promise<void> {
    return this.group.stopped;
  }
}


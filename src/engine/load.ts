/**
 * Loading an engine dir: check engine.json (format version, target), check the run's
 * options against what the engine was built for, read each tensor by its byte range
 * (checksum verified), widen to the target's compute dtype, and bind the stored graph
 * with the stored memory plan. No pass runs here.
 */
import type { Backend, BoundGraph, HalfWeightMap, KvCacheShape, KvDType, PackedWeightMap, WeightMap } from "../backends/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import { EngineError } from "../errors.js";
import type { Graph } from "../graph/ir.js";
import { deserializeGraph, readManifest, WeightsReader, type EngineManifest } from "./format.js";
import type { BuildReport } from "./report.js";
import { TARGETS } from "./targets.js";
import { decodeEntry } from "./packed-weights.js";

export interface LoadEngineOptions {
  /** Defaults to the engine's target's backend; another backend is refused. */
  backend?: Backend;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** KV blocks to allocate; default enough for maxSeqs sequences of maxSeqLen. */
  numBlocks?: number;
  /** At most what the engine was built for (default: that). */
  maxSeqs?: number;
  maxSeqLen?: number;
  maxBatchTokens?: number;
  /** Check every tensor's checksum (default true; ~0.3 ms per MB). */
  verify?: boolean;
  /** KV cache storage type (default f32). */
  kvDtype?: KvDType;
  /** Threads of a cpu-target backend made here (default: all cores, or $LLMRT_THREADS). */
  threads?: number;
}

export interface LoadedEngine {
  manifest: EngineManifest;
  config: ModelConfig;
  graph: Graph;
  bound: BoundGraph;
  maxSeqLen: number;
  limits: { maxBatchTokens: number; maxLogitRows: number; maxSeqs: number; origin: string };
  report: BuildReport;
}

/** Throws when the run asks for more than the engine was built for. */
function checkWithin(dir: string, m: EngineManifest, asked: number | undefined, built: number, flag: string): number {
  if (asked === undefined) return built;
  if (asked > built) {
    throw new EngineError(dir, `asked for ${flag} ${asked}, but the engine was built for ${built}`, `rebuild with --${flag} ${asked}: llmrt build --model ${m.source.path} -o ${dir} --${flag} ${asked}`);
  }
  return asked;
}

export function loadEngineDir(dir: string, opts: LoadEngineOptions = {}): LoadedEngine {
  const m = readManifest(dir);
  if (m.parallel) {
    const { tp, pp } = m.parallel;
    throw new EngineError(dir, `a sharded engine (tp ${tp} x pp ${pp} = ${tp * pp} ranks) does not load as one engine`, "load it with LLM.load (or ShardedEngine.start from src/parallel), which starts the ranks");
  }
  const target = TARGETS[m.target];
  const backend = opts.backend ?? target?.createBackend(dir, m.build, { threads: opts.threads });
  if (!backend || backend.name !== m.target) {
    const have = backend?.name ?? Object.keys(TARGETS).join(", ");
    throw new EngineError(dir, `built for target "${m.target}", which this llmrt cannot run here (have: ${have})`, `rebuild for this backend: llmrt build --model ${m.source.path} -o ${dir} --target ${backend?.name ?? "reference"}`);
  }
  const maxSeqs = checkWithin(dir, m, opts.maxSeqs, m.build.maxSeqs, "max-seqs");
  const maxSeqLen = checkWithin(dir, m, opts.maxSeqLen, m.build.maxSeqLen, "max-seq-len");
  const maxBatchTokens = checkWithin(dir, m, opts.maxBatchTokens, m.build.maxBatchTokens, "max-batch-tokens");

  const graph = deserializeGraph(m.graph);
  const reader = new WeightsReader(dir, m);
  const weights: WeightMap = new Map();
  const packed: PackedWeightMap = new Map();
  const halves: HalfWeightMap = new Map();
  try {
    for (const e of m.weights.tensors) {
      if (e.shape.length === 2 && (e.dtype === "bf16" || e.dtype === "f16") && backend.halfDTypes?.includes(e.dtype)) {
        const bytes = reader.read(e, opts.verify ?? true); // 4-byte aligned: a buffer of its own
        halves.set(e.name, { dtype: e.dtype, bits: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1) });
        continue;
      }
      // packed int8 / int4 weights stay packed for a backend that runs them, else widen here
      const w = decodeEntry(reader.read(e, opts.verify ?? true), e, backend.packedDTypes?.includes(e.dtype as never) ?? false);
      if (w instanceof Float32Array) weights.set(e.name, w);
      else packed.set(e.name, w);
    }
  } finally {
    reader.close();
  }
  for (const [name, d] of graph.tensors) {
    if (d.kind === "weight" && !weights.has(name) && !packed.has(name) && !halves.has(name)) throw new EngineError(dir, `weight "${name}" of the graph is not in ${m.weights.file}`, `rebuild it: llmrt build --model ${m.source.path} -o ${dir}`);
  }

  const blockSize = opts.blockSize ?? 16;
  const kv: KvCacheShape = {
    numLayers: m.model.numLayers,
    numBlocks: opts.numBlocks ?? maxSeqs * Math.ceil(maxSeqLen / blockSize),
    blockSize,
    numKvHeads: m.model.numKvHeads,
    headDim: m.model.headDim,
    dtype: opts.kvDtype ?? "f32",
  };
  return {
    manifest: m,
    config: m.model,
    graph,
    bound: backend.bind(graph, weights, kv, m.memoryPlan, packed.size ? packed : undefined, halves.size ? halves : undefined),
    maxSeqLen,
    limits: { maxBatchTokens, maxLogitRows: m.build.maxLogitRows, maxSeqs, origin: dir },
    report: m.report,
  };
}

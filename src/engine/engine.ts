/**
 * An engine: a model's graph bound to a backend with its weights loaded and its paged
 * KV cache allocated. The runtime hands it StepBatches and reads logits back.
 */
import type { Backend, BoundGraph, KvCacheShape, WeightMap } from "../backends/backend.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Checkpoint } from "../checkpoint/types.js";
import type { Graph } from "../graph/ir.js";
import type { StepBatch } from "../graph/step-batch.js";
import { LOGITS, buildLlamaGraph } from "../models/llama.js";

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
}

export class Engine {
  constructor(
    readonly config: ModelConfig,
    readonly graph: Graph,
    private readonly bound: BoundGraph,
    readonly maxSeqLen: number,
  ) {}

  get kv(): KvCacheShape {
    return this.bound.kv;
  }

  get kvBytes(): number {
    return this.bound.kvBytes;
  }

  /** Runs one step; returns logits [R, vocab] for step.logitRows. */
  forward(step: StepBatch): Float32Array {
    return this.bound.forward(step).get(LOGITS)!;
  }

  copyBlock(src: number, dst: number): void {
    this.bound.copyBlock(src, dst);
  }

  static fromCheckpoint(ckpt: Checkpoint, opts: EngineOptions = {}): Engine {
    const config = ckpt.config;
    const graph = buildLlamaGraph(config);
    const weights: WeightMap = new Map();
    for (const [name, decl] of graph.tensors) {
      if (decl.kind === "weight") weights.set(name, ckpt.readF32(name));
    }
    const blockSize = opts.blockSize ?? 16;
    const maxSeqLen = opts.maxSeqLen ?? Math.min(config.maxPositionEmbeddings, 4096);
    const maxSeqs = opts.maxSeqs ?? 1;
    const kv: KvCacheShape = {
      numLayers: config.numLayers,
      numBlocks: opts.numBlocks ?? maxSeqs * Math.ceil(maxSeqLen / blockSize),
      blockSize,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
    };
    const backend = opts.backend ?? new ReferenceBackend();
    return new Engine(config, graph, backend.bind(graph, weights, kv), maxSeqLen);
  }
}

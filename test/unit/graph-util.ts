/**
 * Shared by the graph pass tests: the model variants, a ragged multi-step scenario, and
 * running a graph on the reference backend with its weights made from their recipes.
 */
import type { KvCacheShape, WeightMap } from "../../src/backends/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { materializeWeight } from "../../src/engine/weights.js";
import type { Graph } from "../../src/graph/ir.js";
import type { MemoryPlan } from "../../src/graph/passes/plan-memory.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";

export const VARIANTS: Record<string, Partial<ModelConfig>> = {
  "llama GQA, interleaved rope": { numKvHeads: 2, rope: { theta: 10000, style: "interleaved", dim: 8, scaling: { type: "none" } } },
  "MQA, tied head, linear rope scaling": { numKvHeads: 1, tieWordEmbeddings: true, rope: { theta: 500000, style: "neox", dim: 8, scaling: { type: "linear", factor: 4 } } },
  "qwen2 qkv bias": { architecture: "qwen2", numKvHeads: 2, attentionBias: true },
  "qwen3 q/k norm, headDim 16": { architecture: "qwen3", numKvHeads: 4, qkNorm: true, headDim: 16, rope: { theta: 1e6, style: "neox", dim: 16, scaling: { type: "none" } } },
  "mistral sliding window 3": { architecture: "mistral", numKvHeads: 2, slidingWindow: 3 },
  "partial rotary, llama3 scaling": { rope: { theta: 500000, style: "neox", dim: 4, scaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } } },
};

export function variantCheckpoint(over: Partial<ModelConfig>, seed = 5): Checkpoint {
  return syntheticCheckpoint(syntheticConfig({ numLayers: 2, hiddenSize: 32, numHeads: 4, intermediateSize: 40, vocabSize: 64, maxPositionEmbeddings: 64, ...over }), seed);
}

export const BLOCK_SIZE = 4;

/**
 * Three ragged steps over two sequences (prefill chunks and decodes mixed, blocks not in
 * order), every row wanting logits: [tokens of the step, logit rows].
 */
export function scenario(): StepBatch[] {
  const pool = new BlockPool(16, BLOCK_SIZE);
  pool.reserve(new Sequence(99, [1]), BLOCK_SIZE * 2); // skew the block ids
  const a = new Sequence(0, [1, 7, 12, 30, 4, 9, 22, 41, 3, 17, 8]);
  const b = new Sequence(1, [1, 60, 2, 33, 5, 6, 50]);
  const steps: StepBatch[] = [];
  for (const [na, nb] of [[5, 3], [4, 1], [2, 3]]) {
    pool.reserve(a, a.numComputed + na);
    pool.reserve(b, b.numComputed + nb);
    const step = buildStep([{ seq: a, numNew: na, wantLogits: true }, { seq: b, numNew: nb, wantLogits: true }], BLOCK_SIZE);
    step.logitRows = Int32Array.from({ length: na + nb }, (_, i) => i);
    steps.push(step);
    a.numComputed += na;
    b.numComputed += nb;
  }
  return steps;
}

/** One sequence of `tokens` run as steps of `counts` new tokens each (a prefill, then decodes), every row wanting logits. */
export function oneSequenceSteps(tokens: number[], counts: number[], id = 0): StepBatch[] {
  const pool = new BlockPool(16, BLOCK_SIZE);
  const seq = new Sequence(id, tokens);
  const steps: StepBatch[] = [];
  for (const n of counts) {
    pool.reserve(seq, seq.numComputed + n);
    const step = buildStep([{ seq, numNew: n, wantLogits: true }], BLOCK_SIZE);
    step.logitRows = Int32Array.from({ length: n }, (_, i) => i);
    steps.push(step);
    seq.numComputed += n;
  }
  return steps;
}

export function weightsFor(g: Graph, ckpt: Checkpoint): WeightMap {
  const w: WeightMap = new Map();
  for (const [name, d] of g.tensors) if (d.kind === "weight") w.set(name, materializeWeight(g, name, ckpt));
  return w;
}

/** Logits of every row of every scenario step, concatenated. */
export function runScenario(g: Graph, ckpt: Checkpoint, plan?: MemoryPlan): Float32Array {
  const c = ckpt.config;
  const kv: KvCacheShape = { numLayers: c.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: c.numKvHeads, headDim: c.headDim };
  const bound = new ReferenceBackend().bind(g, weightsFor(g, ckpt), kv, plan);
  const outs = scenario().map((s) => bound.forward(s).get("logits")!);
  const all = new Float32Array(outs.reduce((n, o) => n + o.length, 0));
  let at = 0;
  for (const o of outs) (all.set(o, at), (at += o.length));
  return all;
}

/** Largest absolute difference relative to the largest magnitude in b. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}

/** A graph as comparable JSON (to check a pass left its input alone). */
export function snapshot(g: Graph): string {
  return JSON.stringify({ tensors: [...g.tensors], ops: g.ops, outputs: g.outputs });
}

export function count(g: Graph, kind: string): number {
  return g.ops.filter((o) => o.op === kind).length;
}

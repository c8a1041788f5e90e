/**
 * The CUDA backend against the reference backend on the same graph, weights and ragged
 * steps: random-weight Llama-family models (every variant), a scripted series of steps
 * mixing prefill chunks and decode tokens over shuffled KV blocks, the logits of every
 * step compared by ||cuda - ref|| / ||ref||. Used by test/unit/cuda-emu.test.ts (on the
 * CPU emulator) and by bench/device/check.ts (on a GPU).
 */
import type { Backend, KvDType, WeightMap } from "../../src/backends/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { planEngine } from "../../src/engine/build.js";
import { resolveBuildOptions, type EngineDType } from "../../src/engine/options.js";
import { materializeWeight, roundTrip, storageDType } from "../../src/engine/weights.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";

export interface Seq {
  tokens: number[];
  table: number[];
  /** Tokens already in the cache. */
  done: number;
}

/** Builds the StepBatch feeding `take[i]` new tokens of each sequence. */
export function makeStep(seqs: Seq[], take: number[], blockSize: number): StepBatch {
  const T = take.reduce((a, b) => a + b, 0);
  const tokenIds = new Int32Array(T), positions = new Int32Array(T), slotMapping = new Int32Array(T);
  const seqStarts = new Int32Array(seqs.length + 1), contextLens = new Int32Array(seqs.length);
  const logitRows: number[] = [];
  let t = 0;
  seqs.forEach((s, i) => {
    seqStarts[i] = t;
    for (let j = 0; j < take[i]; j++, t++) {
      const p = s.done + j;
      tokenIds[t] = s.tokens[p];
      positions[t] = p;
      slotMapping[t] = s.table[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
    }
    s.done += take[i];
    contextLens[i] = s.done;
    logitRows.push(t - 1);
  });
  seqStarts[seqs.length] = T;
  return { numTokens: T, tokenIds, positions, seqStarts, contextLens, blockTables: seqs.map((s) => Int32Array.from(s.table)), slotMapping, logitRows: Int32Array.from(logitRows) };
}

/** A small deterministic generator (xorshift32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/**
 * Steps over `nSeqs` sequences of the given lengths: a ragged prefill (chunks of at most
 * `chunk` tokens), then decode steps where the shortest sequence also starts a new
 * prefill chunk now and then; KV blocks are handed out shuffled.
 */
export function scriptedSteps(lengths: number[], vocab: number, blockSize: number, numBlocks: number, chunk: number, seed = 1): StepBatch[] {
  const r = rng(seed);
  const blocks = Array.from({ length: numBlocks }, (_, i) => i).sort(() => r() - 0.5);
  const seqs: Seq[] = lengths.map((len) => {
    const n = Math.ceil(len / blockSize);
    if (blocks.length < n) throw new RangeError(`scriptedSteps: ${numBlocks} blocks are too few`);
    return { tokens: Array.from({ length: len }, () => Math.floor(r() * vocab)), table: blocks.splice(0, n), done: 0 };
  });
  const steps: StepBatch[] = [];
  const promptLen = lengths.map((l) => Math.max(1, Math.floor(l * 0.6)));
  // prefill in chunks
  while (seqs.some((s, i) => s.done < promptLen[i])) {
    const take = seqs.map((s, i) => Math.min(chunk, promptLen[i] - s.done));
    const live = seqs.map((_, i) => i).filter((i) => take[i] > 0);
    steps.push(makeStep(live.map((i) => seqs[i]), live.map((i) => take[i]), blockSize));
  }
  // decode, one token each, a few steps mixing in a longer chunk for sequence 0
  for (let k = 0; seqs.some((s) => s.done < s.tokens.length) && k < 4; k++) {
    const take = seqs.map((s, i) => Math.min(i === 0 && k % 3 === 2 ? 5 : 1, s.tokens.length - s.done));
    const live = seqs.map((_, i) => i).filter((i) => take[i] > 0);
    steps.push(makeStep(live.map((i) => seqs[i]), live.map((i) => take[i]), blockSize));
  }
  return steps;
}

export interface CompareCase {
  name: string;
  config: Partial<ModelConfig>;
  dtype: EngineDType;
  kvDtype?: KvDType;
  /** Largest ||cuda - ref|| / ||ref|| of any step's logits that passes. */
  tol: number;
  lengths?: number[];
  chunk?: number;
}

export interface CompareResult {
  name: string;
  rel: number[];
  maxRel: number;
  /** Share of logit rows whose argmax agrees. */
  argmaxAgree: number;
  ok: boolean;
  ms: number;
}

export function relError(a: Float32Array, ref: Float32Array): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = a[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return Number.isFinite(num) ? Math.sqrt(num / Math.max(den, 1e-30)) : Infinity;
}

function argmaxAgreement(a: Float32Array, ref: Float32Array, V: number): [number, number] {
  let agree = 0;
  const rows = ref.length / V;
  for (let r = 0; r < rows; r++) {
    let ia = 0,
      ir = 0;
    for (let v = 1; v < V; v++) {
      if (a[r * V + v] > a[r * V + ia]) ia = v;
      if (ref[r * V + v] > ref[r * V + ir]) ir = v;
    }
    if (ia === ir) agree++;
  }
  return [agree, rows];
}

/** A case's model: config, optimized graph, memory plan and weights as the builder makes them. */
export function caseModel(c: CompareCase, maxBatchTokens: number) {
  const config = syntheticConfig({ numLayers: 2, ...c.config });
  const ckpt = syntheticCheckpoint(config, 7);
  const options = resolveBuildOptions(config, { dtype: c.dtype, maxBatchTokens, maxSeqs: 8, maxSeqLen: config.maxPositionEmbeddings, maxLogitRows: maxBatchTokens });
  const plan = planEngine(config, options);
  const weights: WeightMap = new Map();
  for (const [name, d] of plan.graph.tensors) if (d.kind === "weight") weights.set(name, roundTrip(materializeWeight(plan.graph, name, ckpt), storageDType(d.shape, options.dtype)));
  return { config, plan, weights };
}

/** Reference logits per case shape: cases differing only in backend options share them. */
const refMemo = new Map<string, Float32Array[]>();

/** Runs one case: both backends bound to the same graph and weights, every scripted step compared. */
export function compareCase(c: CompareCase, cuda: Backend, blockSize = 16): CompareResult {
  const t0 = performance.now();
  const lengths = c.lengths ?? [29, 5, 14];
  const numBlocks = lengths.reduce((n, l) => n + Math.ceil(l / blockSize), 0) + 3;
  const { config, plan, weights } = caseModel(c, Math.max(64, (c.chunk ?? 16) * lengths.length + lengths.length));
  const kv = { numLayers: config.numLayers, numBlocks, blockSize, numKvHeads: config.numKvHeads, headDim: config.headDim, dtype: c.kvDtype };
  const steps = scriptedSteps(lengths, config.vocabSize, blockSize, numBlocks, c.chunk ?? 16);
  const key = JSON.stringify([c.config, c.dtype, c.kvDtype, lengths, c.chunk, blockSize]);
  let refs = refMemo.get(key);
  if (!refs) {
    const ref = new ReferenceBackend().bind(plan.graph, weights, kv, plan.memory);
    refs = steps.map((s) => ref.forward(s).get("logits")!);
    refMemo.set(key, refs);
  }
  const dev = cuda.bind(plan.graph, weights, kv, plan.memory);
  const rel: number[] = [];
  let agree = 0,
    rows = 0;
  for (const [i, step] of steps.entries()) {
    const r = refs[i];
    const d = dev.forward(step).get("logits")!;
    rel.push(relError(d, r));
    const [a, n] = argmaxAgreement(d, r, config.vocabSize);
    agree += a;
    rows += n;
  }
  (dev as { dispose?: () => void }).dispose?.();
  const maxRel = Math.max(...rel);
  return { name: c.name, rel, maxRel, argmaxAgree: agree / rows, ok: maxRel <= c.tol, ms: performance.now() - t0 };
}

/** The model variants every backend must match: GQA, MQA, Qwen2 bias, Qwen3 q/k norm, Mistral window, tied head, interleaved and partial RoPE. */
export const MODEL_VARIANTS: Record<string, Partial<ModelConfig>> = {
  llama_gqa: { hiddenSize: 128, numHeads: 4, numKvHeads: 2, intermediateSize: 192, vocabSize: 160 },
  mqa_tied: { hiddenSize: 128, numHeads: 4, numKvHeads: 1, intermediateSize: 160, vocabSize: 128, tieWordEmbeddings: true },
  qwen2_bias: { architecture: "qwen2", hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 192, vocabSize: 150, attentionBias: true },
  qwen3_qknorm: { architecture: "qwen3", hiddenSize: 128, numHeads: 2, numKvHeads: 2, intermediateSize: 192, vocabSize: 150, qkNorm: true },
  mistral_window: { architecture: "mistral", hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 192, vocabSize: 150, slidingWindow: 9 },
  interleaved_partial: {
    hiddenSize: 96,
    numHeads: 3,
    numKvHeads: 3,
    intermediateSize: 160,
    vocabSize: 120,
    rope: { theta: 10000, style: "interleaved", dim: 16, scaling: { type: "none" } },
  },
};

/**
 * Random-weight Llama-family checkpoints made in memory: for the offline default model,
 * for tests of every architecture variant, and for benchmarks of big shapes without
 * downloading anything. Weights are a deterministic function of (seed, tensor name).
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { expectedTensors as canonicalTensors } from "../checkpoint/expected-tensors.js";
import { TOKEN_EMBD } from "../checkpoint/names.js";
import type { Checkpoint, TensorInfo, TokenizerSource } from "../checkpoint/types.js";
import { ASCII_VOCAB_SIZE } from "../tokenizer/ascii.js";

/** Named shapes: "tiny" is the offline default; "llama-110m" matches stories110M; "tinyllama-1.1b" TinyLlama-1.1B. */
export const SYNTHETIC_PRESETS: Record<string, Partial<ModelConfig>> = {
  tiny: { hiddenSize: 64, intermediateSize: 172, numLayers: 4, numHeads: 8, numKvHeads: 4, vocabSize: ASCII_VOCAB_SIZE },
  "llama-110m": { hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 12, vocabSize: 32000, maxPositionEmbeddings: 1024 },
  "tinyllama-1.1b": { hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, vocabSize: 32000, maxPositionEmbeddings: 2048, rmsNormEps: 1e-5 },
};

export function syntheticConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  const hiddenSize = over.hiddenSize ?? 64;
  const numHeads = over.numHeads ?? 8;
  const headDim = over.headDim ?? hiddenSize / numHeads;
  return {
    architecture: "llama",
    vocabSize: 512,
    hiddenSize,
    intermediateSize: 172,
    numLayers: 2,
    numHeads,
    numKvHeads: numHeads,
    headDim,
    maxPositionEmbeddings: 512,
    rmsNormEps: 1e-5,
    rope: { theta: 10000, style: "neox", dim: over.rope?.dim ?? headDim, scaling: { type: "none" } },
    tieWordEmbeddings: false,
    attentionBias: false,
    qkNorm: false,
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...over,
  };
}

/** The canonical tensors a config needs, with shapes (as the checkpoint readers expect them), stored f32. */
export function expectedTensors(c: ModelConfig): TensorInfo[] {
  return [...canonicalTensors(c)].map(([name, shape]) => ({ name, dtype: "f32", shape }));
}

/** FNV-1a of a string: a stable per-tensor seed. */
function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Deterministic values: norms near 1, biases small, matrices ~ U(-a, a) with a = sqrt(3 / fanIn). */
export function syntheticTensor(info: TensorInfo, seed: number): Float32Array {
  const n = info.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let s = (hashName(info.name) ^ Math.imul(seed, 0x9e3779b1)) >>> 0 || 1;
  const next = () => {
    // xorshift32: cheap, deterministic, good enough for weights
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000 - 0.5; // [-0.5, 0.5)
  };
  const isNorm = info.name.includes("norm");
  const isBias = info.name.endsWith(".bias");
  const fanIn = info.shape[info.shape.length - 1];
  const scale = isNorm ? 0.2 : isBias ? 0.2 : info.name === TOKEN_EMBD ? 2 : 2 * Math.sqrt(3 / fanIn);
  for (let i = 0; i < n; i++) out[i] = (isNorm ? 1 : 0) + scale * next();
  return out;
}

/** An in-memory checkpoint of random weights for `config`. */
export function syntheticCheckpoint(
  config: ModelConfig,
  seed = 0,
  tokenizer: TokenizerSource = { kind: "none" },
): Checkpoint {
  const infos = new Map(expectedTensors(config).map((t) => [t.name, t]));
  return {
    format: "synthetic",
    path: `synthetic:${seed}`,
    config,
    tokenizer,
    tensors: () => [...infos.values()],
    has: (name) => infos.has(name),
    info(name) {
      const t = infos.get(name);
      if (!t) throw new Error(`synthetic checkpoint has no tensor "${name}"`);
      return t;
    },
    readF32(name) {
      return syntheticTensor(this.info(name), seed);
    },
    close() {},
  };
}

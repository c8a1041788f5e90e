/**
 * llama.cpp (through node-llama-cpp, a devDependency) as an independent reference for
 * compatibility tests, and the random-weight checkpoints those tests write: one config
 * per architecture, its weights as an HF directory and as GGUFs of several dtypes.
 */
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { Llama, Token } from "node-llama-cpp";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import type { TensorDType } from "../../src/checkpoint/types.js";
import { OUTPUT, TOKEN_EMBD } from "../../src/checkpoint/names.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { writeGguf, type GgufWriteTensor, type GgufWriteValue } from "../../src/checkpoint/write-gguf.js";
import { readGgufMetadata } from "../../src/checkpoint/gguf.js";
import { GgufArray, type GgufValueType } from "../../src/checkpoint/gguf-metadata.js";
import { toRopeLayout } from "../../src/checkpoint/rope-permute.js";
import { expectedTensors, syntheticConfig, syntheticTensor } from "../../src/models/synthetic.js";

let llamaPromise: Promise<Llama> | null = null;

/**
 * The shared llama.cpp instance (CPU only, prebuilt binaries, never built here), or null
 * after marking the test skipped when node-llama-cpp is not installed. Under CI=true a
 * missing node-llama-cpp fails the test instead: CI always runs `npm ci`, which installs it.
 */
export async function llamaCpp(t: TestContext): Promise<Llama | null> {
  let mod: typeof import("node-llama-cpp");
  try {
    mod = await import("node-llama-cpp");
  } catch (e) {
    const msg = `node-llama-cpp is not installed (${(e as Error).message.split("\n")[0]}); run \`npm ci\` to install the devDependencies`;
    if (process.env.CI === "true") throw new Error(msg);
    t.skip(msg);
    return null;
  }
  // errors only: keep llama.cpp's per-load chatter out of the test report
  llamaPromise ??= mod.getLlama({ gpu: false, build: "never", logLevel: mod.LlamaLogLevel.error });
  return llamaPromise;
}

export interface LlamaCppGreedy {
  /** Generated tokens (greedy). */
  tokens: number[];
  /** Per generated position: the `topN` most probable [id, probability], best first. */
  top: [number, number][][];
  /** Per generated position: log(p1 / p2), the top-1 margin in logit units. */
  margin: number[];
}

/**
 * Feeds `prompt` token ids to llama.cpp (F32 KV cache, one thread, no flash attention:
 * as close to float32 reference math as it gets) and generates `maxTokens` greedily.
 */
export async function llamaCppGreedy(
  llama: Llama,
  modelPath: string,
  prompt: number[],
  maxTokens: number,
  topN = 5,
): Promise<LlamaCppGreedy> {
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const size = Math.max(64, prompt.length + maxTokens);
    const context = await model.createContext({
      contextSize: size,
      batchSize: size,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    try {
      const out: LlamaCppGreedy = { tokens: [], top: [], margin: [] };
      const seq = context.getSequence();
      for await (const o of seq.evaluateWithMetadata(prompt as Token[], { probabilities: true }, { temperature: 0 })) {
        // the map is sorted by probability, best first
        const ranked = [...o.probabilities.entries()].slice(0, Math.max(2, topN)) as [number, number][];
        out.tokens.push(o.token);
        out.top.push(ranked.slice(0, topN));
        out.margin.push(Math.log(ranked[0][1] / ranked[1][1]));
        if (out.tokens.length >= maxTokens) break;
      }
      return out;
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** One architecture's random-weight test model. */
export interface CompatModel {
  name: string;
  config: ModelConfig;
  /** Canonical tensors (HF names are derived by the writers). */
  tensors: Map<string, Float32Array>;
}

/**
 * Tiny configs, one per architecture. Every matrix row length is a multiple of 32 so
 * Q8_0/Q4_0 really quantize every matrix (the writer falls back to F16 otherwise).
 */
export function compatConfigs(): Record<string, ModelConfig> {
  const base = { vocabSize: 320, hiddenSize: 64, intermediateSize: 128, numLayers: 2, maxPositionEmbeddings: 256 };
  const qwen2 = syntheticConfig({
    ...base,
    architecture: "qwen2",
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    intermediateSize: 160,
    attentionBias: true,
    rmsNormEps: 1e-6,
    rope: { theta: 1e6, style: "neox", dim: 16, scaling: { type: "none" } },
  });
  return {
    llama: syntheticConfig({ ...base, architecture: "llama", numHeads: 8, numKvHeads: 4, headDim: 8 }),
    // Qwen2: qkv bias, theta 1e6, head dim 16
    qwen2: qwen2,
    // the same with the head tied to the embeddings (as Qwen2-0.5B): no output.weight in
    // either file. The embedding then dominates the logits, so greedy output repeats tokens.
    "qwen2-tied": { ...qwen2, tieWordEmbeddings: true },
    // Qwen3: q/k RMSNorm, head dim 32 so q is wider (128) than the hidden size (64)
    qwen3: syntheticConfig({
      ...base,
      architecture: "qwen3",
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      qkNorm: true,
      rmsNormEps: 1e-6,
      rope: { theta: 1e6, style: "neox", dim: 32, scaling: { type: "none" } },
    }),
    // Mistral: sliding window, 4 query heads per kv head
    mistral: syntheticConfig({ ...base, architecture: "mistral", numHeads: 8, numKvHeads: 2, headDim: 8, slidingWindow: 32 }),
  };
}

/**
 * Random weights for `config` (src/models/synthetic.ts) with a peaked next-token
 * distribution, so that greedy paths do not hinge on the last bits: the output head is
 * scaled up, and, for untied heads, mixed with a "bigram" term that maps the current
 * token's embedding to the row of a fixed successor token (a permutation of the
 * vocabulary). Top-1 margins then mostly exceed the differences the tests measure,
 * while every layer still moves the logits.
 */
export function compatModel(name: string, config: ModelConfig, seed: number, opts: { headScale?: number; bigram?: number } = {}): CompatModel {
  const headScale = opts.headScale ?? 1;
  const bigram = opts.bigram ?? 1;
  const tensors = new Map<string, Float32Array>();
  for (const info of expectedTensors(config)) tensors.set(info.name, syntheticTensor(info, seed));
  const head = tensors.get(OUTPUT);
  if (head) {
    const emb = tensors.get(TOKEN_EMBD)!;
    const V = config.vocabSize;
    const H = config.hiddenSize;
    // successor of token t: 3 + (a * t + seed) mod (V - 3), a permutation of the ordinary
    // tokens (never <unk>, BOS or EOS: llama.cpp stops generating at EOS)
    const a = 1031; // prime, so coprime to any vocabulary size below it
    for (let t = 0; t < V; t++) {
      const next = 3 + ((a * t + seed) % (V - 3));
      for (let i = 0; i < H; i++) head[next * H + i] = headScale * head[next * H + i] + bigram * emb[t * H + i];
    }
  }
  return { name, config, tensors };
}

/** BOS followed by `n` ordinary token ids (3..V-1), a deterministic function of `seed`. */
export function promptTokens(vocabSize: number, seed: number, n = 5): number[] {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const out = [1];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0; // LCG step
    out.push(3 + (s % (vocabSize - 3)));
  }
  return out;
}

/** Writes the HF directory (F32 safetensors + config.json) under dir/NAME-hf; returns its path. */
export function writeCompatHf(dir: string, m: CompatModel): string {
  const path = join(dir, `${m.name}-hf`);
  writeHfCheckpoint(path, m.config, m.tensors);
  return path;
}

/** Writes dir/NAME-DTYPE.gguf (llama.cpp's converter layout; Mistral as "llama"); returns its path. */
export function writeCompatGguf(dir: string, m: CompatModel, dtype: TensorDType): string {
  const path = join(dir, `${m.name}-${dtype}.gguf`);
  writeModelGguf(path, m.config, m.tensors, { dtype, name: `llmrt compat ${m.name}` });
  return path;
}

/**
 * Writes dir/NAME-LABEL.gguf with a dtype chosen per tensor (writeModelGguf stores every
 * matrix alike): the metadata is copied, types and all, from a model GGUF the project's
 * writer made, and the tensors are laid out as that writer does.
 */
export function writeMixedGguf(dir: string, m: CompatModel, label: string, dtypeOf: (name: string) => TensorDType): string {
  const template = writeCompatGguf(dir, m, "f32");
  const meta = readGgufMetadata(template);
  const metadata: Record<string, GgufWriteValue> = {};
  for (const key of meta.keys()) {
    const type = meta.type(key)!;
    const v = meta.get(key)!;
    if (v instanceof GgufArray) {
      metadata[key] = { type: "array", itemType: v.itemType as Exclude<GgufValueType, "array">, value: v.toArray() as (number | string | boolean | bigint)[] };
    } else if (type === "string" || type === "bool") {
      metadata[key] = v as string | boolean;
    } else {
      metadata[key] = { type: type as Exclude<GgufValueType, "array">, value: v as number | bigint };
    }
  }
  // llama.cpp's "llama" architecture holds q/k in the interleaved RoPE layout; Qwen keeps neox
  const layout = metadata["general.architecture"] === "llama" ? "interleaved" : "neox";
  const tensors: GgufWriteTensor[] = expectedTensors(m.config).map((t) => ({
    name: t.name,
    shape: t.shape,
    dtype: t.shape.length < 2 ? "f32" : dtypeOf(t.name),
    data: () => toRopeLayout(m.config, t.name, m.tensors.get(t.name)!, m.config.rope.style, layout),
  }));
  const path = join(dir, `${m.name}-${label}.gguf`);
  writeGguf(path, metadata, tensors);
  return path;
}

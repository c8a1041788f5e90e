/**
 * GGUF metadata (+ which tensors exist) -> ModelConfig, for llama.cpp's llama, qwen2
 * and qwen3 architectures. Mistral GGUFs say "llama".
 */
import { ConfigError, UnsupportedModelError } from "../errors.js";
import type { Architecture, ModelConfig, RopeScaling } from "./config.js";
import type { GgufMetadata } from "./gguf-metadata.js";
import { OUTPUT, TOKEN_EMBD, layerTensor } from "./names.js";
import { llama3FromFreqFactors } from "./rope-freqs.js";
import type { TensorInfo } from "./types.js";

/** llama.cpp architecture name -> ours. */
export const GGUF_ARCHITECTURES: Record<string, Architecture> = { llama: "llama", qwen2: "qwen2", qwen3: "qwen3" };
/** llama.cpp's per-model tensor of llama3 RoPE frequency divisors. */
export const ROPE_FREQS = "rope_freqs.weight";
/** Token ids stored as u32 -1 mean "unset". */
const UNSET = 0xffffffff;

export interface GgufTensorView {
  info(name: string): TensorInfo | undefined;
  readF32(name: string): Float32Array;
}

export function ggufArchitecture(meta: GgufMetadata): string {
  const arch = meta.string("general.architecture");
  if (arch === undefined) {
    throw new ConfigError(meta.file, "general.architecture", "is missing", "this GGUF has no architecture; re-convert it with llama.cpp");
  }
  if (!(arch in GGUF_ARCHITECTURES)) {
    throw new UnsupportedModelError(
      `${meta.file}: GGUF architecture "${arch}" is not supported; supported: ${Object.keys(GGUF_ARCHITECTURES).join(", ")}`,
      "llmrt runs Llama-family decoders (Llama, Mistral, Qwen2, Qwen3)",
    );
  }
  return arch;
}

/** A scalar, or a per-layer array whose entries are all equal. */
function uniform(meta: GgufMetadata, key: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined || typeof v === "number") return v;
  const arr = meta.numbers(key);
  if (arr && arr.length > 0 && arr.every((x) => x === arr[0])) return arr[0];
  throw new UnsupportedModelError(`${meta.file}: ${key} differs between layers; llmrt needs it uniform`);
}

function req(meta: GgufMetadata, key: string): number {
  const v = uniform(meta, key);
  if (v === undefined) throw new ConfigError(meta.file, key, "is missing", "re-convert the model with a current llama.cpp");
  if (!Number.isFinite(v) || v <= 0) throw new ConfigError(meta.file, key, `must be positive, got ${v}`);
  return v;
}

function posIntKey(meta: GgufMetadata, key: string, dflt?: number): number {
  const v = meta.has(key) ? req(meta, key) : dflt;
  if (v === undefined) return req(meta, key);
  if (!Number.isSafeInteger(v) || v <= 0) throw new ConfigError(meta.file, key, `must be a positive integer, got ${v}`);
  return v;
}

function tokenId(meta: GgufMetadata, key: string): number | null {
  const v = meta.number(key);
  return v === undefined || v === UNSET || v < 0 ? null : v;
}

function ropeScaling(meta: GgufMetadata, a: string, theta: number, dim: number, t: GgufTensorView): RopeScaling {
  const origCtx = meta.number(`${a}.rope.scaling.original_context_length`);
  if (t.info(ROPE_FREQS)) {
    const s = llama3FromFreqFactors(t.readF32(ROPE_FREQS), theta, dim, origCtx ?? 8192);
    if (s === null) {
      throw new UnsupportedModelError(`${meta.file}: ${ROPE_FREQS} does not follow Llama 3 RoPE scaling; llmrt cannot express it`);
    }
    return s;
  }
  const type = meta.string(`${a}.rope.scaling.type`) ?? "none";
  const factor = meta.number(`${a}.rope.scaling.factor`) ?? meta.number(`${a}.rope.scale_linear`);
  if (type === "linear" || (type === "none" && factor !== undefined && factor !== 1 && factor !== 0)) {
    if (!factor || factor <= 0) throw new ConfigError(meta.file, `${a}.rope.scaling.factor`, `must be positive for linear scaling, got ${factor}`);
    return factor === 1 ? { type: "none" } : { type: "linear", factor };
  }
  if (type === "none") return { type: "none" };
  throw new UnsupportedModelError(`${meta.file}: RoPE scaling "${type}" is not supported (supported: none, linear, llama3)`);
}

export function ggufConfig(meta: GgufMetadata, t: GgufTensorView): ModelConfig {
  const a = ggufArchitecture(meta);
  const architecture = GGUF_ARCHITECTURES[a];
  const hiddenSize = posIntKey(meta, `${a}.embedding_length`);
  const numHeads = posIntKey(meta, `${a}.attention.head_count`);
  const numKvHeads = posIntKey(meta, `${a}.attention.head_count_kv`, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(meta.file, `${a}.attention.head_count_kv`, `${numKvHeads} does not divide head_count ${numHeads}`);
  }
  const headDim = posIntKey(meta, `${a}.attention.key_length`, Math.floor(hiddenSize / numHeads));
  const valueLength = meta.number(`${a}.attention.value_length`);
  if (valueLength !== undefined && valueLength !== headDim) {
    throw new UnsupportedModelError(`${meta.file}: value_length ${valueLength} differs from key_length ${headDim}`);
  }
  const ropeDim = posIntKey(meta, `${a}.rope.dimension_count`, headDim);
  if (ropeDim % 2 !== 0 || ropeDim > headDim) {
    throw new ConfigError(meta.file, `${a}.rope.dimension_count`, `${ropeDim} must be even and at most the head size ${headDim}`);
  }
  const theta = meta.has(`${a}.rope.freq_base`) ? req(meta, `${a}.rope.freq_base`) : 10000;
  const embd = t.info(TOKEN_EMBD);
  const vocabSize = embd?.shape[0] ?? meta.number(`${a}.vocab_size`) ?? meta.array("tokenizer.ggml.tokens")?.length;
  if (!vocabSize) throw new ConfigError(meta.file, `${a}.vocab_size`, "is missing and there is no token_embd.weight or tokenizer.ggml.tokens");
  const sliding = meta.number(`${a}.attention.sliding_window`);
  const eos = ["eos", "eot", "eom"].map((k) => tokenId(meta, `tokenizer.ggml.${k}_token_id`)).filter((x) => x !== null);
  return {
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize: posIntKey(meta, `${a}.feed_forward_length`),
    numLayers: posIntKey(meta, `${a}.block_count`),
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings: posIntKey(meta, `${a}.context_length`),
    rmsNormEps: req(meta, `${a}.attention.layer_norm_rms_epsilon`),
    rope: {
      theta,
      // llama.cpp's converter permutes Llama q/k rows into interleaved pairs; Qwen keeps HF's neox layout.
      style: a === "llama" ? "interleaved" : "neox",
      dim: ropeDim,
      scaling: ropeScaling(meta, a, theta, ropeDim, t),
    },
    tieWordEmbeddings: !t.info(OUTPUT),
    attentionBias: t.info(layerTensor(0, "attn_q.bias")) !== undefined,
    qkNorm: architecture === "qwen3" || t.info(layerTensor(0, "attn_q_norm.weight")) !== undefined,
    slidingWindow: sliding && sliding > 0 ? sliding : null,
    bosTokenId: tokenId(meta, "tokenizer.ggml.bos_token_id"),
    eosTokenIds: [...new Set(eos)],
  };
}

/**
 * Hugging Face config.json (+ generation_config.json) <-> ModelConfig, with the defaults
 * transformers applies when a field is absent (LlamaConfig, MistralConfig, Qwen2Config,
 * Qwen3Config).
 */
import { ConfigError, UnsupportedModelError } from "../errors.js";
import { SUPPORTED_ARCHITECTURES, type Architecture, type ModelConfig, type RopeScaling } from "./config.js";

type Json = Record<string, unknown>;

export const HF_ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
};
const CLASS_OF: Record<Architecture, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
};

/** transformers' defaults for fields a config.json may leave out. */
const DEFAULTS: Record<Architecture, { maxPos: number; slidingWindow: number | null }> = {
  llama: { maxPos: 2048, slidingWindow: null },
  mistral: { maxPos: 4096 * 32, slidingWindow: 4096 },
  qwen2: { maxPos: 32768, slidingWindow: 4096 },
  qwen3: { maxPos: 32768, slidingWindow: 4096 },
};

function architectureOf(j: Json, file: string): Architecture {
  const archs = Array.isArray(j.architectures) ? (j.architectures as unknown[]) : [];
  for (const a of archs) if (typeof a === "string" && a in HF_ARCHITECTURES) return HF_ARCHITECTURES[a];
  if (archs.length === 0 && typeof j.model_type === "string" && (SUPPORTED_ARCHITECTURES as string[]).includes(j.model_type)) {
    return j.model_type as Architecture;
  }
  const what = archs.length ? `architectures ${JSON.stringify(archs)}` : `model_type ${JSON.stringify(j.model_type)}`;
  throw new UnsupportedModelError(
    `${file}: ${what} is not supported; supported: ${Object.keys(HF_ARCHITECTURES).join(", ")} (${SUPPORTED_ARCHITECTURES.join(", ")})`,
    "llmrt runs Llama-family decoders; convert other models elsewhere or pick a supported one",
  );
}

/** j[field] as a number; `prefix` names the enclosing object in messages ("rope_scaling."). */
function num(j: Json, file: string, field: string, dflt?: number, prefix = ""): number {
  const v = j[field];
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    throw new ConfigError(file, prefix + field, "is missing", "add it to config.json (see the model card)");
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ConfigError(file, prefix + field, `must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function posInt(j: Json, file: string, field: string, dflt?: number, prefix = ""): number {
  const v = num(j, file, field, dflt, prefix);
  if (!Number.isSafeInteger(v) || v <= 0) throw new ConfigError(file, prefix + field, `must be a positive integer, got ${v}`);
  return v;
}

function tokenIds(v: unknown, file: string, field: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list) {
    if (!Number.isSafeInteger(x) || (x as number) < 0) throw new ConfigError(file, field, `must be a token id or a list of them, got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

function ropeScaling(rs: unknown, file: string): RopeScaling {
  if (rs === undefined || rs === null) return { type: "none" };
  if (typeof rs !== "object") throw new ConfigError(file, "rope_scaling", `must be an object or null, got ${JSON.stringify(rs)}`);
  const r = rs as Json;
  const type = r.rope_type ?? r.type;
  if (type === undefined || type === "default") return { type: "none" };
  const P = "rope_scaling.";
  if (type === "linear") return { type: "linear", factor: num(r, file, "factor", undefined, P) };
  if (type === "llama3") {
    return {
      type: "llama3",
      factor: num(r, file, "factor", undefined, P),
      lowFreqFactor: num(r, file, "low_freq_factor", undefined, P),
      highFreqFactor: num(r, file, "high_freq_factor", undefined, P),
      originalMaxPositionEmbeddings: posInt(r, file, "original_max_position_embeddings", undefined, P),
    };
  }
  throw new UnsupportedModelError(
    `${file}: rope_scaling type ${JSON.stringify(type)} is not supported (supported: linear, llama3)`,
    "use a checkpoint without that RoPE scaling, or remove rope_scaling to run at the original context length",
  );
}

/** Sliding window as transformers applies it: Qwen only when use_sliding_window, to layers >= max_window_layers. */
function slidingWindow(j: Json, file: string, arch: Architecture, numLayers: number): number | null {
  const dflt = DEFAULTS[arch].slidingWindow;
  const size = "sliding_window" in j ? j.sliding_window : dflt;
  if (arch === "llama" || size === null || size === undefined) return null;
  if (!Number.isSafeInteger(size) || (size as number) <= 0) throw new ConfigError(file, "sliding_window", `must be a positive integer or null, got ${JSON.stringify(size)}`);
  if (arch === "mistral") return size as number;
  if (j.use_sliding_window !== true) return null;
  const from = num(j, file, "max_window_layers", 28);
  if (from >= numLayers) return null;
  if (from > 0) {
    throw new UnsupportedModelError(
      `${file}: sliding window on layers ${from}..${numLayers - 1} only (max_window_layers ${from}) is not supported`,
      "llmrt applies one sliding window to every layer; set use_sliding_window false to run with full attention",
    );
  }
  return size as number;
}

/**
 * config.json (and optionally generation_config.json) -> ModelConfig. tieWordEmbeddings and
 * attentionBias follow the config; the safetensors reader then reconciles them with the tensors.
 */
export function parseHfConfig(j: Json, file: string, gen: Json | null = null, genFile = "generation_config.json"): ModelConfig {
  const architecture = architectureOf(j, file);
  const hiddenSize = posInt(j, file, "hidden_size");
  const numHeads = posInt(j, file, "num_attention_heads");
  const numKvHeads = posInt(j, file, "num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(file, "num_key_value_heads", `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  const headDim = posInt(j, file, "head_dim", Math.floor(hiddenSize / numHeads));
  const numLayers = posInt(j, file, "num_hidden_layers");
  const params = (typeof j.rope_parameters === "object" && j.rope_parameters !== null ? j.rope_parameters : {}) as Json;
  const theta = num(j, file, "rope_theta", num(params, file, "rope_theta", 10000));
  const partial = num(j, file, "partial_rotary_factor", num(params, file, "partial_rotary_factor", 1));
  const ropeDim = Math.floor(headDim * partial);
  if (ropeDim <= 0 || ropeDim % 2 !== 0 || partial > 1) {
    throw new ConfigError(file, "partial_rotary_factor", `${partial} x head_dim ${headDim} must give an even number of rotated dims`);
  }
  const eos = [...tokenIds(gen?.eos_token_id, genFile, "eos_token_id"), ...tokenIds(j.eos_token_id, file, "eos_token_id")];
  const bos = [...tokenIds(gen?.bos_token_id, genFile, "bos_token_id"), ...tokenIds(j.bos_token_id, file, "bos_token_id")];
  return {
    architecture,
    vocabSize: posInt(j, file, "vocab_size"),
    hiddenSize,
    intermediateSize: posInt(j, file, "intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings: posInt(j, file, "max_position_embeddings", DEFAULTS[architecture].maxPos),
    rmsNormEps: num(j, file, "rms_norm_eps", 1e-6),
    rope: { theta, style: "neox", dim: ropeDim, scaling: ropeScaling(j.rope_scaling ?? (params.rope_type ? params : null), file) },
    tieWordEmbeddings: j.tie_word_embeddings === true,
    // Qwen2's attention has q/k/v bias hard-wired; the others read attention_bias.
    attentionBias: architecture === "qwen2" || j.attention_bias === true,
    qkNorm: architecture === "qwen3",
    slidingWindow: slidingWindow(j, file, architecture, numLayers),
    bosTokenId: bos.length ? bos[0] : null,
    eosTokenIds: [...new Set(eos)],
  };
}

/** ModelConfig -> a config.json transformers loads as the same model (q/k in HF's neox layout). */
export function hfConfigJson(c: ModelConfig): Json {
  const bad = (what: string) => {
    throw new UnsupportedModelError(`cannot express ${what} in a Hugging Face ${CLASS_OF[c.architecture]} config`);
  };
  if (c.qkNorm !== (c.architecture === "qwen3")) bad(`qkNorm=${c.qkNorm}`);
  if (c.architecture === "qwen2" && !c.attentionBias) bad("attentionBias=false");
  if (c.architecture === "mistral" && c.attentionBias) bad("attentionBias=true");
  if (c.architecture === "llama" && c.slidingWindow !== null) bad("a sliding window");
  const s = c.rope.scaling;
  const ropeScalingJson =
    s.type === "none"
      ? null
      : s.type === "linear"
        ? { rope_type: "linear", factor: s.factor }
        : {
            rope_type: "llama3",
            factor: s.factor,
            low_freq_factor: s.lowFreqFactor,
            high_freq_factor: s.highFreqFactor,
            original_max_position_embeddings: s.originalMaxPositionEmbeddings,
          };
  const j: Json = {
    architectures: [CLASS_OF[c.architecture]],
    model_type: c.architecture,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.rope.theta,
    rope_scaling: ropeScalingJson,
    hidden_act: "silu",
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.attentionBias,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
  };
  if (c.rope.dim !== c.headDim) j.partial_rotary_factor = c.rope.dim / c.headDim;
  if (c.architecture === "mistral") j.sliding_window = c.slidingWindow;
  if (c.architecture === "qwen2" || c.architecture === "qwen3") {
    j.use_sliding_window = c.slidingWindow !== null;
    j.sliding_window = c.slidingWindow;
    j.max_window_layers = 0;
  }
  return j;
}

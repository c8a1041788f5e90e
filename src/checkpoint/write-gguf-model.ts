/**
 * Writes a complete model GGUF (llama.cpp's "llama", "qwen2" or "qwen3" architecture)
 * from a ModelConfig and canonical tensors: hyperparameters, a tokenizer vocabulary and
 * the weights. For "llama" GGUFs, q/k rows are stored in the interleaved RoPE layout
 * (as llama.cpp's converter stores them); Qwen GGUFs keep HF's neox layout. Tensors are
 * permuted here when the config's rope.style differs from the target layout, so any
 * checkpoint can be written and read back as the same model.
 */
import { UnsupportedModelError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors } from "./expected-tensors.js";
import { ROPE_FREQS } from "./gguf-config.js";
import { llama3FreqFactors } from "./rope-freqs.js";
import { toRopeLayout } from "./rope-permute.js";
import { getTensor, hasTensor, type CanonicalTensors } from "./tensor-encode.js";
import { blockValues, numel } from "./tensor-data.js";
import type { TensorDType } from "./types.js";
import { gguf, writeGguf, type GgufWriteTensor, type GgufWriteValue } from "./write-gguf.js";

/** llama.cpp token types (llama_token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface GgufVocab {
  /** tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE). */
  model: string;
  tokens: string[];
  scores?: number[];
  types?: number[];
  merges?: string[];
  /** tokenizer.ggml.pre, for "gpt2" vocabularies. */
  pre?: string;
}

export interface ModelGgufOptions {
  /** Storage of 2-D weights (default f32). 1-D tensors are always F32; block formats fall back to F16 for rows not a multiple of their block (32; K-quants 256). */
  dtype?: TensorDType;
  /** A per-tensor override of `dtype` for 2-D weights (canonical name -> dtype; undefined: `dtype`), e.g. a Q4_K_M-like mix. */
  dtypeOf?: (name: string) => TensorDType | undefined;
  version?: 2 | 3;
  /** Default: byteLevelSpmVocab(config.vocabSize). */
  vocab?: GgufVocab;
  /** general.name */
  name?: string;
  /** Extra keys, written last (may override). */
  metadata?: Record<string, GgufWriteValue>;
}

/**
 * A minimal SentencePiece vocabulary of exactly `size` tokens: <unk>, <s>, </s>, the 256
 * byte tokens <0x00>..<0xFF>, then unused fillers. Smaller sizes keep a prefix of that list.
 */
export function byteLevelSpmVocab(size: number): GgufVocab {
  const tokens: string[] = [];
  const types: number[] = [];
  const add = (t: string, type: number) => {
    if (tokens.length < size) tokens.push(t), types.push(type);
  };
  add("<unk>", TOKEN_TYPE.unknown);
  add("<s>", TOKEN_TYPE.control);
  add("</s>", TOKEN_TYPE.control);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, TOKEN_TYPE.byte);
  while (tokens.length < size) add(`<unused${tokens.length}>`, TOKEN_TYPE.unused);
  return { model: "llama", tokens, scores: new Array(size).fill(0), types };
}

const GGUF_ARCH: Record<ModelConfig["architecture"], string> = { llama: "llama", mistral: "llama", qwen2: "qwen2", qwen3: "qwen3" };
/** llama_ftype of a file whose matrices are `dtype` (K-quants: the _S variants, which are mostly that type). */
const FILE_TYPE: Record<TensorDType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 14, q5_k: 16, q6_k: 18, bf16: 32 };

function checkExpressible(c: ModelConfig, arch: string): void {
  const bad = (what: string) => {
    throw new UnsupportedModelError(`writeModelGguf: llama.cpp's "${arch}" architecture has no ${what}`);
  };
  if (c.qkNorm && arch !== "qwen3") bad("q/k norm");
  if (!c.qkNorm && arch === "qwen3") bad("variant without q/k norm");
  if (c.attentionBias && arch === "qwen3") bad("q/k/v bias");
  if (c.rope.scaling.type === "llama3" && arch !== "llama") bad("llama3 RoPE scaling (rope_freqs)");
}

function hparams(c: ModelConfig, a: string, dtype: TensorDType, name: string): Record<string, GgufWriteValue> {
  const m: Record<string, GgufWriteValue> = {
    "general.architecture": a,
    "general.name": name,
    "general.file_type": gguf.u32(FILE_TYPE[dtype]),
    [`${a}.vocab_size`]: gguf.u32(c.vocabSize),
    [`${a}.context_length`]: gguf.u32(c.maxPositionEmbeddings),
    [`${a}.embedding_length`]: gguf.u32(c.hiddenSize),
    [`${a}.block_count`]: gguf.u32(c.numLayers),
    [`${a}.feed_forward_length`]: gguf.u32(c.intermediateSize),
    [`${a}.attention.head_count`]: gguf.u32(c.numHeads),
    [`${a}.attention.head_count_kv`]: gguf.u32(c.numKvHeads),
    [`${a}.attention.key_length`]: gguf.u32(c.headDim),
    [`${a}.attention.value_length`]: gguf.u32(c.headDim),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(c.rmsNormEps),
    [`${a}.rope.dimension_count`]: gguf.u32(c.rope.dim),
    [`${a}.rope.freq_base`]: gguf.f32(c.rope.theta),
  };
  const s = c.rope.scaling;
  if (s.type === "linear") {
    m[`${a}.rope.scaling.type`] = "linear";
    m[`${a}.rope.scaling.factor`] = gguf.f32(s.factor);
  } else if (s.type === "llama3") {
    // The factors travel as the rope_freqs tensor; this key lets readers recover the exact parameters.
    m[`${a}.rope.scaling.original_context_length`] = gguf.u32(s.originalMaxPositionEmbeddings);
  }
  if (c.slidingWindow !== null) m[`${a}.attention.sliding_window`] = gguf.u32(c.slidingWindow);
  return m;
}

function tokenizerMeta(c: ModelConfig, v: GgufVocab): Record<string, GgufWriteValue> {
  if (v.tokens.length !== c.vocabSize) {
    throw new RangeError(`writeModelGguf: vocabulary has ${v.tokens.length} tokens, config.vocabSize is ${c.vocabSize}`);
  }
  const m: Record<string, GgufWriteValue> = { "tokenizer.ggml.model": v.model };
  if (v.pre !== undefined) m["tokenizer.ggml.pre"] = v.pre;
  m["tokenizer.ggml.tokens"] = gguf.arr("string", v.tokens);
  if (v.scores) m["tokenizer.ggml.scores"] = gguf.arr("f32", v.scores);
  if (v.types) m["tokenizer.ggml.token_type"] = gguf.arr("i32", v.types);
  if (v.merges) m["tokenizer.ggml.merges"] = gguf.arr("string", v.merges);
  if (c.bosTokenId !== null) m["tokenizer.ggml.bos_token_id"] = gguf.u32(c.bosTokenId);
  // GGUF has three end ids; a fourth and later eos id cannot be stored.
  const [eos, eot, eom] = c.eosTokenIds;
  if (eos !== undefined) m["tokenizer.ggml.eos_token_id"] = gguf.u32(eos);
  if (eot !== undefined) m["tokenizer.ggml.eot_token_id"] = gguf.u32(eot);
  if (eom !== undefined) m["tokenizer.ggml.eom_token_id"] = gguf.u32(eom);
  return m;
}

export function writeModelGguf(file: string, config: ModelConfig, src: CanonicalTensors, opts: ModelGgufOptions = {}): void {
  const a = GGUF_ARCH[config.architecture];
  checkExpressible(config, a);
  const dtype = opts.dtype ?? "f32";
  const target = a === "llama" ? "interleaved" : "neox";

  const tensors: GgufWriteTensor[] = [];
  const s = config.rope.scaling;
  if (s.type === "llama3") {
    tensors.push({ name: ROPE_FREQS, shape: [config.rope.dim / 2], dtype: "f32", data: llama3FreqFactors(config.rope.theta, config.rope.dim, s) });
  }
  for (const [name, shape] of expectedTensors(config)) {
    if (!hasTensor(src, name)) throw new RangeError(`writeModelGguf: tensor ${name} [${shape.join(", ")}] is missing`);
    const want = (shape.length === 2 && opts.dtypeOf?.(name)) || dtype;
    const t = shape.length < 2 ? "f32" : shape[1] % blockValues(want) !== 0 ? "f16" : want;
    const data = () => {
      const w = getTensor(src, name)!;
      if (w.length !== numel(shape)) throw new RangeError(`writeModelGguf: ${name} has ${w.length} values, config implies [${shape.join(", ")}]`);
      return toRopeLayout(config, name, w, config.rope.style, target);
    };
    tensors.push({ name, shape, dtype: t, data });
  }

  const metadata = {
    ...hparams(config, a, dtype, opts.name ?? `llmrt ${config.architecture}`),
    ...tokenizerMeta(config, opts.vocab ?? byteLevelSpmVocab(config.vocabSize)),
    ...opts.metadata,
  };
  writeGguf(file, metadata, tensors, { version: opts.version ?? 3 });
}

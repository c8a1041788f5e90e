/**
 * llama2.c file layouts (karpathy/llama2.c run.c, runq.c, export.py, tokenizer.py):
 *   v0 (legacy): 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size
 *       (negative = separate classifier), seq_len}; fp32 weights in run.c's order.
 *   v1: u32 magic "ak42", int32 version, the 7 ints, u8 shared_classifier, zero pad to 256;
 *       fp32 weights, norms first.
 *   v2: as v1 plus int32 group_size at byte 37; norms in fp32, then every matrix as
 *       int8[n] followed by its fp32 scales[n / group_size].
 *   tokenizer: int32 max_token_length, then per token {f32 score, int32 len, len bytes}.
 * A file is recognised by content: a plausible header whose implied size is exactly the
 * file size, or a tokenizer walk that ends exactly at the end of the file.
 */
import { Cursor, type ModelFile } from "./file-io.js";
import { OUTPUT, OUTPUT_NORM, TOKEN_EMBD, layerTensor, type LayerTensor } from "./names.js";

export const LLAMA2C_MAGIC = 0x616b3432; // "ak42"
const V1_HEADER_BYTES = 256;

export interface Llama2cHeader {
  version: 0 | 1 | 2;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** v2 only: values per int8 group sharing one fp32 scale. */
  groupSize: number;
}

/** One tensor's place in the file. q8: int8[numel] then f32 scales[numel / groupSize]. */
export interface Llama2cTensor {
  name: string;
  shape: number[];
  offset: number;
  storage: "f32" | "q8";
}

/** Reads and sanity-checks a header; returns a reason string when it is not one. */
export function readLlama2cHeader(file: ModelFile): Llama2cHeader | string {
  if (file.size < 28) return `only ${file.size} bytes: too short for a llama2.c header`;
  const c = new Cursor(file);
  const first = c.u32("magic");
  let version: 0 | 1 | 2 = 0;
  if (first === LLAMA2C_MAGIC) {
    if (file.size < V1_HEADER_BYTES) return `only ${file.size} bytes: too short for a llama2.c v1/v2 header`;
    const v = c.i32("version");
    if (v !== 1 && v !== 2) return `llama2.c version ${v} is not supported (llmrt reads legacy v0, v1 and v2)`;
    version = v;
  } else {
    c.pos = 0;
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, () => c.i32("header"));
  const shared = version === 0 ? vocab > 0 : c.u8("shared_classifier") !== 0;
  const groupSize = version === 2 ? c.i32("group_size") : 0;
  const h: Llama2cHeader = {
    version, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: shared, groupSize,
  };
  const bad = implausible(h, vocab);
  return bad ?? h;
}

function implausible(h: Llama2cHeader, rawVocab: number): string | null {
  const ints = `dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, vocab_size ${rawVocab}, seq_len ${h.seqLen}`;
  const ok =
    h.dim > 0 && h.dim <= 1 << 16 &&
    h.hiddenDim > 0 && h.hiddenDim <= 1 << 18 &&
    h.nLayers > 0 && h.nLayers <= 1024 &&
    h.nHeads > 0 && h.dim % h.nHeads === 0 && (h.dim / h.nHeads) % 2 === 0 &&
    h.nKvHeads > 0 && h.nHeads % h.nKvHeads === 0 &&
    h.vocabSize > 0 && h.vocabSize <= 1 << 22 && (h.version !== 0 || rawVocab !== 0) &&
    h.seqLen > 0 && h.seqLen <= 1 << 22 &&
    (h.version !== 2 || (h.groupSize > 0 && h.dim % h.groupSize === 0));
  return ok ? null : `header (${ints}${h.version === 2 ? `, group_size ${h.groupSize}` : ""}) is not a plausible llama2.c model`;
}

/** Every tensor's location, and the byte where the file must end. */
export function llama2cLayout(h: Llama2cHeader): { tensors: Llama2cTensor[]; end: number } {
  const hs = h.dim / h.nHeads;
  const q = h.nHeads * hs;
  const kv = h.nKvHeads * hs;
  const tensors: Llama2cTensor[] = [];
  let offset = h.version === 0 ? 28 : V1_HEADER_BYTES;
  const quantized = h.version === 2;
  const put = (name: string, shape: number[], matrix: boolean) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const storage = quantized && matrix ? "q8" : "f32";
    tensors.push({ name, shape, offset, storage });
    offset += storage === "q8" ? n + (n / h.groupSize) * 4 : n * 4;
  };
  const perLayer = (t: LayerTensor, shape: number[], matrix: boolean) => {
    for (let l = 0; l < h.nLayers; l++) put(layerTensor(l, t), shape, matrix);
  };
  const matrices = () => {
    perLayer("attn_q.weight", [q, h.dim], true);
    perLayer("attn_k.weight", [kv, h.dim], true);
    perLayer("attn_v.weight", [kv, h.dim], true);
    perLayer("attn_output.weight", [h.dim, q], true);
  };
  if (h.version === 0) {
    put(TOKEN_EMBD, [h.vocabSize, h.dim], true);
    perLayer("attn_norm.weight", [h.dim], false);
    matrices();
    perLayer("ffn_norm.weight", [h.dim], false);
    perLayer("ffn_gate.weight", [h.hiddenDim, h.dim], true); // w1
    perLayer("ffn_down.weight", [h.dim, h.hiddenDim], true); // w2
    perLayer("ffn_up.weight", [h.hiddenDim, h.dim], true); // w3
    put(OUTPUT_NORM, [h.dim], false);
    offset += h.seqLen * (hs / 2) * 4 * 2; // freq_cis_real, freq_cis_imag: unused, RoPE is computed
  } else {
    perLayer("attn_norm.weight", [h.dim], false);
    perLayer("ffn_norm.weight", [h.dim], false);
    put(OUTPUT_NORM, [h.dim], false);
    put(TOKEN_EMBD, [h.vocabSize, h.dim], true);
    matrices();
    perLayer("ffn_gate.weight", [h.hiddenDim, h.dim], true);
    perLayer("ffn_down.weight", [h.dim, h.hiddenDim], true);
    perLayer("ffn_up.weight", [h.hiddenDim, h.dim], true);
  }
  if (!h.sharedClassifier) put(OUTPUT, [h.vocabSize, h.dim], true);
  return { tensors, end: offset };
}

/** Tokenizer files past this size are not walked when telling files apart. */
const MAX_TOKENIZER_BYTES = 64 << 20;

/** Number of tokens when the file is a llama2.c tokenizer, else null. */
export function llama2cTokenizerCount(file: ModelFile): number | null {
  if (file.size < 16 || file.size > MAX_TOKENIZER_BYTES) return null;
  const c = new Cursor(file);
  const maxLen = c.i32("max_token_length");
  if (maxLen <= 0 || maxLen > 1 << 16) return null;
  let count = 0;
  while (c.remaining > 0) {
    if (c.remaining < 8) return null;
    const score = c.f32("score");
    const len = c.i32("length");
    if (!Number.isFinite(score) || len < 0 || len > maxLen || len > c.remaining) return null;
    c.skip(len, "token");
    count++;
  }
  return count > 0 ? count : null;
}

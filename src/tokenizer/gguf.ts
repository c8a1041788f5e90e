/**
 * A tokenizer from GGUF metadata (`tokenizer.ggml.*`): "llama" is SentencePiece BPE,
 * "gpt2" byte-level BPE. Defaults follow llama.cpp where a key is missing.
 */
import { readGgufMetadata } from "../checkpoint/gguf.js";
import { TokenizerError } from "../errors.js";
import { BpeTokenizer } from "./bpe.js";
import { preTokenizerFor } from "./bpe-pre.js";
import { SpmTokenizer } from "./spm.js";
import { TokenType } from "./vocab.js";

/** What we need of a GGUF metadata reader (src/checkpoint's GgufMetadata fits). */
export interface GgufMetaLike {
  get(key: string): unknown;
}

const HINT = "re-convert the model with a recent llama.cpp convert_hf_to_gguf.py, or load its tokenizer.json instead";

export function tokenizerFromGguf(meta: GgufMetaLike, file: string): SpmTokenizer | BpeTokenizer {
  const model = str(meta, "tokenizer.ggml.model", file);
  if (model === undefined) {
    throw new TokenizerError(file, "no tokenizer.ggml.model key: the GGUF file carries no vocabulary", "load the tokenizer from the original model's tokenizer.json");
  }
  const tokens = strings(meta, "tokenizer.ggml.tokens", file);
  if (tokens === undefined || tokens.length === 0) throw new TokenizerError(file, "tokenizer.ggml.tokens is missing or empty", HINT);
  const n = tokens.length;
  const typesRaw = numbers(meta, "tokenizer.ggml.token_type", file);
  if (typesRaw !== undefined && typesRaw.length !== n) {
    throw new TokenizerError(file, `tokenizer.ggml.token_type has ${typesRaw.length} entries for ${n} tokens`, HINT);
  }
  const types = typesRaw ? Uint8Array.from(typesRaw) : new Uint8Array(n).fill(TokenType.Normal);
  const id = (key: string, dflt: number | null): number | null => {
    const v = num(meta, key, file);
    if (v === undefined) return dflt !== null && dflt < n ? dflt : null;
    return v >= 0 && v < n ? v : null; // u32 -1 means "none"
  };
  const chatTemplate = str(meta, "tokenizer.chat_template", file) ?? null;
  const addBosKey = bool(meta, "tokenizer.ggml.add_bos_token", file);

  if (model === "llama") {
    const scoresRaw = numbers(meta, "tokenizer.ggml.scores", file);
    if (scoresRaw !== undefined && scoresRaw.length !== n) {
      throw new TokenizerError(file, `tokenizer.ggml.scores has ${scoresRaw.length} entries for ${n} tokens`, HINT);
    }
    return new SpmTokenizer({
      source: file,
      tokens,
      types,
      scores: scoresRaw ? Float32Array.from(scoresRaw) : new Float32Array(n),
      bosId: id("tokenizer.ggml.bos_token_id", 1),
      eosId: id("tokenizer.ggml.eos_token_id", 2),
      unkId: id("tokenizer.ggml.unknown_token_id", 0),
      addBos: addBosKey ?? true,
      addSpacePrefix: bool(meta, "tokenizer.ggml.add_space_prefix", file) ?? true,
      removeExtraWhitespaces: bool(meta, "tokenizer.ggml.remove_extra_whitespaces", file) ?? false,
      chatTemplate,
      strip: phi3Strip(meta, tokens, types),
    });
  }
  if (model === "gpt2") {
    const merges = strings(meta, "tokenizer.ggml.merges", file);
    if (merges === undefined) throw new TokenizerError(file, "byte-level BPE vocabulary without tokenizer.ggml.merges", HINT);
    const pre = preTokenizerFor(str(meta, "tokenizer.ggml.pre", file), file);
    return new BpeTokenizer({
      source: file,
      tokens,
      types,
      merges,
      preTokenize: pre.split,
      ignoreMerges: pre.ignoreMerges,
      bosId: id("tokenizer.ggml.bos_token_id", null),
      eosId: id("tokenizer.ggml.eos_token_id", null),
      unkId: id("tokenizer.ggml.unknown_token_id", null),
      // llama.cpp adds BOS for Llama 3 style vocabularies unless the file says otherwise.
      addBos: addBosKey ?? pre.name === "llama3",
      chatTemplate,
    });
  }
  throw new TokenizerError(
    file,
    `tokenizer.ggml.model "${model}" is not supported (supported: "llama" SentencePiece BPE, "gpt2" byte-level BPE)`,
    "load the model's tokenizer.json instead if it has one",
  );
}

/**
 * llama.cpp gives Phi-3's special tokens rstrip (whitespace after them is dropped
 * when they are parsed from text), except <unk>, <s> and <|endoftext|>; we match it.
 */
function phi3Strip(meta: GgufMetaLike, tokens: string[], types: Uint8Array): Map<number, { rstrip: boolean }> | undefined {
  const name = String(meta.get("general.name") ?? "").toLowerCase();
  if (!name.includes("phi-3") && !name.includes("phi3")) return undefined;
  const m = new Map<number, { rstrip: boolean }>();
  tokens.forEach((t, i) => {
    const ty = types[i];
    const special = ty === TokenType.Control || ty === TokenType.UserDefined || ty === TokenType.Unknown;
    if ((special || t === "</s>") && t !== "<unk>" && t !== "<s>" && t !== "<|endoftext|>") m.set(i, { rstrip: true });
  });
  return m;
}

// Typed access that accepts plain arrays or lazy array objects with toArray().

function str(meta: GgufMetaLike, key: string, file: string): string | undefined {
  const v = meta.get(key);
  if (v === undefined || typeof v === "string") return v;
  throw wrong(file, key, v, "a string");
}

function num(meta: GgufMetaLike, key: string, file: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw wrong(file, key, v, "an integer");
}

function bool(meta: GgufMetaLike, key: string, file: string): boolean | undefined {
  const v = meta.get(key);
  if (v === undefined || typeof v === "boolean") return v;
  throw wrong(file, key, v, "a bool");
}

function arr(meta: GgufMetaLike, key: string, file: string): unknown[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>);
  if (typeof v === "object" && v !== null && typeof (v as { toArray?: unknown }).toArray === "function") {
    return (v as { toArray(): unknown[] }).toArray();
  }
  throw wrong(file, key, v, "an array");
}

function strings(meta: GgufMetaLike, key: string, file: string): string[] | undefined {
  const a = arr(meta, key, file);
  if (a !== undefined && !a.every((x) => typeof x === "string")) throw wrong(file, key, a, "an array of strings");
  return a as string[] | undefined;
}

function numbers(meta: GgufMetaLike, key: string, file: string): number[] | undefined {
  const a = arr(meta, key, file);
  if (a === undefined) return undefined;
  return a.map((x) => {
    if (typeof x === "number") return x;
    if (typeof x === "bigint") return Number(x);
    throw wrong(file, key, a, "an array of numbers");
  });
}

function wrong(file: string, key: string, v: unknown, expected: string): TokenizerError {
  const got = Array.isArray(v) ? "an array" : typeof v;
  return new TokenizerError(file, `metadata ${key} is ${got}, expected ${expected}`, HINT);
}

/** The vocabulary embedded in a GGUF file (only the metadata is read). */
export function loadGgufTokenizer(file: string): SpmTokenizer | BpeTokenizer {
  let meta: GgufMetaLike;
  try {
    meta = readGgufMetadata(file);
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    const msg = (e as Error).message.split("\n")[0];
    throw new TokenizerError(file, `cannot read GGUF metadata: ${msg.startsWith(file + ": ") ? msg.slice(file.length + 2) : msg}`, "check that the file is a complete GGUF v2/v3 file");
  }
  return tokenizerFromGguf(meta, file);
}

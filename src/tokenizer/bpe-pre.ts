/**
 * Pre-tokenizers of byte-level BPE vocabularies, chosen by GGUF `tokenizer.ggml.pre`.
 * Each is a list of regexes applied in turn, as llama.cpp does: every regex splits each
 * piece left by the previous one into its matches and the text between them.
 */
import { TokenizerError } from "../errors.js";

// The original GPT-2 / tiktoken pattern.
const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
// Llama 3 (tiktoken cl100k-like): case-insensitive contractions, digits in groups of up to 3.
const LLAMA3 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
// Qwen2: as Llama 3 but single digits.
const QWEN2 = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

const PRE: Record<string, string[]> = {
  // llama.cpp's fallback for BPE vocabularies converted without a pre-tokenizer name.
  default: [String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, "[0-9][0-9][0-9]"],
  gpt2: [GPT2],
  llama3: [LLAMA3],
  qwen2: [QWEN2],
  // StarCoder-style vocabularies split every digit first.
  starcoder: [String.raw`\p{N}`, GPT2],
};

const ALIASES: Record<string, keyof typeof PRE> = {
  default: "default",
  "gpt-2": "gpt2",
  gpt2: "gpt2",
  mpt: "gpt2",
  olmo: "gpt2",
  jais: "gpt2",
  "llama-bpe": "llama3",
  "llama-v3": "llama3",
  llama3: "llama3",
  dbrx: "llama3",
  "smaug-bpe": "llama3",
  qwen2: "qwen2",
  "stablelm2": "qwen2",
  "deepseek-r1-qwen": "qwen2",
  starcoder: "starcoder",
  refact: "starcoder",
  "command-r": "starcoder",
  smollm: "starcoder",
  codeshell: "starcoder",
};

/** Pre-tokenizer families whose vocabularies skip merging when a whole word is a token (llama.cpp ignore_merges). */
const IGNORE_MERGES = new Set(["llama3"]);

export type PreTokenizer = (text: string) => string[];

export interface PreTokenizerChoice {
  name: string;
  split: PreTokenizer;
  ignoreMerges: boolean;
}

export function supportedPreTokenizers(): string[] {
  return Object.keys(ALIASES);
}

/** The pre-tokenizer for a `tokenizer.ggml.pre` value (missing: "default"). */
export function preTokenizerFor(pre: string | undefined, file: string): PreTokenizerChoice {
  const name = ALIASES[pre ?? "default"];
  if (name === undefined) {
    throw new TokenizerError(
      file,
      `tokenizer.ggml.pre "${pre}" is not a pre-tokenizer llmrt knows`,
      `supported: ${supportedPreTokenizers().join(", ")}; or load the model's tokenizer.json instead`,
    );
  }
  const res = PRE[name].map((src) => new RegExp(src, "gu"));
  return { name, split: (text) => splitByRegexes(text, res), ignoreMerges: IGNORE_MERGES.has(name) };
}

/** Applies each regex in turn; matches and the gaps between them both become pieces. */
export function splitByRegexes(text: string, res: readonly RegExp[]): string[] {
  let pieces = text.length > 0 ? [text] : [];
  for (const re of res) {
    const next: string[] = [];
    for (const p of pieces) {
      let last = 0;
      for (const m of p.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index > last) next.push(p.slice(last, m.index));
        next.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < p.length) next.push(p.slice(last));
    }
    pieces = next;
  }
  return pieces;
}

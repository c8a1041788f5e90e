/**
 * llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score,
 * int32 byte length and the bytes. llama2.c's exporter wrote spaces instead of "▁"
 * and stored BOS/EOS as "\n<s>\n" / "\n</s>\n"; we undo both so the vocabulary is the
 * SentencePiece one again and goes through the same encoder as a GGUF vocabulary.
 */
import { readFileSync } from "node:fs";
import { TokenizerError } from "../errors.js";
import { parseBytePiece, SPACE, SpmTokenizer } from "./spm.js";
import { TokenType } from "./vocab.js";

const HINT = "a llama2.c tokenizer file is int32 max_token_length then {float32 score, int32 len, bytes} per token (e.g. tok512.bin, tokenizer.bin)";

export interface Llama2cTokenizerOptions {
  /** Read exactly this many tokens (the model's vocab_size); default: until the end of the file. */
  vocabSize?: number;
}

export function loadLlama2cTokenizer(file: string, opts: Llama2cTokenizerOptions = {}): SpmTokenizer {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new TokenizerError(file, `cannot read llama2.c tokenizer: ${(e as Error).message}`, "check the path");
  }
  return parseLlama2cTokenizer(buf, file, opts);
}

export function parseLlama2cTokenizer(buf: Uint8Array, file: string, opts: Llama2cTokenizerOptions = {}): SpmTokenizer {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.byteLength < 4) throw new TokenizerError(file, `file is ${buf.byteLength} bytes, too short for a llama2.c tokenizer`, HINT);
  const maxLen = dv.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) throw new TokenizerError(file, `max_token_length ${maxLen} is not plausible`, HINT);
  const dec = new TextDecoder("utf-8");
  const tokens: string[] = [];
  const scores: number[] = [];
  let off = 4;
  while (opts.vocabSize === undefined ? off < buf.byteLength : tokens.length < opts.vocabSize) {
    const i = tokens.length;
    if (off + 8 > buf.byteLength) throw new TokenizerError(file, `token ${i}: header at byte ${off} runs past the end of the file (${buf.byteLength} bytes)`, HINT);
    const score = dv.getFloat32(off, true);
    const len = dv.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxLen || off + len > buf.byteLength) {
      throw new TokenizerError(file, `token ${i}: length ${len} at byte ${off - 4} is negative, above max_token_length ${maxLen}, or runs past the end of the file`, HINT);
    }
    tokens.push(dec.decode(buf.subarray(off, off + len)));
    scores.push(score);
    off += len;
  }
  if (tokens.length < 3) throw new TokenizerError(file, `only ${tokens.length} tokens; expected <unk>, <s>, </s> and more`, HINT);

  const types = new Uint8Array(tokens.length).fill(TokenType.Normal);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (i < 3 && /^\n?<\/?s>\n?$|^<unk>$/.test(t)) {
      tokens[i] = t.trim();
      types[i] = tokens[i] === "<unk>" ? TokenType.Unknown : TokenType.Control;
    } else if (parseBytePiece(t) !== null) {
      types[i] = TokenType.Byte;
    } else {
      tokens[i] = t.replaceAll(" ", SPACE);
    }
  }
  const idOf = (text: string, fallback: number) => {
    const i = tokens.indexOf(text);
    return i >= 0 ? i : tokens.length > fallback ? fallback : null;
  };
  return new SpmTokenizer({
    source: file,
    tokens,
    types,
    scores: Float32Array.from(scores),
    bosId: idOf("<s>", 1),
    eosId: idOf("</s>", 2),
    unkId: idOf("<unk>", 0),
    addBos: true,
    addSpacePrefix: true,
    chatTemplate: null,
  });
}

/** Whether the bytes look like a llama2.c tokenizer file (plausible header and first three tokens). */
export function looksLikeLlama2cTokenizer(head: Uint8Array): boolean {
  if (head.byteLength < 4 + 3 * 8) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const maxLen = dv.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) return false;
  let off = 4;
  for (let i = 0; i < 3; i++) {
    if (off + 8 > head.byteLength) return false;
    const len = dv.getInt32(off + 4, true);
    if (len < 0 || len > maxLen || off + 8 + len > head.byteLength) return false;
    off += 8 + len;
  }
  return true;
}

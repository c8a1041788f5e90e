/**
 * One entry point for every tokenizer llmrt reads. A path is recognised by content,
 * not by name: GGUF magic, a JSON object (tokenizer.json), a llama2.c tokenizer file,
 * or a SentencePiece tokenizer.model; a directory is searched for tokenizer.json,
 * then tokenizer.model.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { TokenizerSource } from "../checkpoint/types.js";
import { TokenizerError } from "../errors.js";
import { loadGgufTokenizer } from "./gguf.js";
import { loadHfTokenizer } from "./hf.js";
import { loadLlama2cTokenizer, looksLikeLlama2cTokenizer } from "./llama2c.js";
import { loadSpmModel, looksLikeSpmModel } from "./spm-model.js";
import type { Tokenizer } from "./types.js";

export type TokenizerFileKind = "gguf" | "hf" | "llama2c" | "spm-model";

export async function loadTokenizer(source: TokenizerSource | string): Promise<Tokenizer> {
  return loadTokenizerSync(source);
}

export function loadTokenizerSync(source: TokenizerSource | string): Tokenizer {
  if (typeof source !== "string") {
    switch (source.kind) {
      case "hf":
        return loadFromPath(source.dir);
      case "gguf":
        return loadGgufTokenizer(source.file);
      case "llama2c":
        return loadLlama2cTokenizer(source.file);
      case "none":
        throw new TokenizerError("(none)", "the checkpoint comes without a tokenizer", "pass one explicitly: a tokenizer.json, its directory, a GGUF file or a llama2.c tokenizer.bin");
    }
  }
  return loadFromPath(source);
}

function loadFromPath(path: string): Tokenizer {
  if (!existsSync(path)) throw new TokenizerError(path, "no such file or directory", "pass a tokenizer.json, its directory, a GGUF file or a llama2.c tokenizer.bin");
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, "tokenizer.json"))) return loadHfTokenizer(path);
    if (existsSync(join(path, "tokenizer.model"))) return loadSpmModel(join(path, "tokenizer.model"));
    throw new TokenizerError(path, "directory has neither tokenizer.json nor tokenizer.model", "point at the model directory that holds tokenizer.json");
  }
  const kind = detectTokenizerFile(path);
  switch (kind) {
    case "gguf":
      return loadGgufTokenizer(path);
    case "hf":
      return loadHfTokenizer(path);
    case "llama2c":
      return loadLlama2cTokenizer(path);
    case "spm-model":
      return loadSpmModel(path);
    default:
      throw new TokenizerError(path, "not a tokenizer file llmrt recognises", "expected GGUF, tokenizer.json, a llama2.c tokenizer.bin or a SentencePiece tokenizer.model");
  }
}

/** What kind of tokenizer file this is, from its first bytes; null if none. */
export function detectTokenizerFile(file: string): TokenizerFileKind | null {
  if (!existsSync(file) || statSync(file).isDirectory()) return null;
  const head = readHead(file, 4096);
  if (head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return "gguf"; // "GGUF"
  const firstChar = Buffer.from(head).toString("utf8").trimStart()[0];
  if (firstChar === "{") return "hf";
  if (looksLikeLlama2cTokenizer(head)) return "llama2c";
  if (looksLikeSpmModel(head)) return "spm-model";
  return null;
}

function readHead(file: string, n: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new TokenizerError(file, `cannot open: ${(e as Error).message}`, "check the path and permissions");
  }
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * The tokenizer travels with the engine: Hugging Face files are copied, a llama2.c
 * tokenizer.bin is copied, a GGUF vocabulary is written as a vocab-only GGUF (no
 * tensors), and synthetic models use the built-in ASCII tokenizer.
 */
import { chmodSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { GgufArray, readGgufMetadata, type GgufMetadata } from "../checkpoint/gguf.js";
import type { Checkpoint } from "../checkpoint/types.js";
import { writeGguf, type GgufWriteValue } from "../checkpoint/write-gguf.js";
import { TokenizerError } from "../errors.js";
import { AsciiTokenizer } from "../tokenizer/ascii.js";
import { loadTokenizer } from "../tokenizer/load.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { EngineTokenizer } from "./format.js";

const HF_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"];
const LLAMA2C_FILE = "tokenizer.bin";
const GGUF_FILE = "tokenizer.gguf";

/** One GGUF metadata entry as the writer takes it (flat arrays and scalars; nested arrays are not tokenizer data). */
function toWriteValue(meta: GgufMetadata, key: string): GgufWriteValue | undefined {
  const v = meta.get(key);
  const type = meta.type(key);
  if (v === undefined || type === undefined) return undefined;
  if (v instanceof GgufArray) {
    if (v.itemType === "array") return undefined;
    return { type: "array", itemType: v.itemType, value: v.toArray() as (number | bigint | boolean | string)[] };
  }
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v;
  return { type: type as Exclude<typeof type, "array" | "string" | "bool">, value: v };
}

function writeVocabOnlyGguf(src: string, dest: string): void {
  const meta = readGgufMetadata(src);
  const out: Record<string, GgufWriteValue> = {};
  for (const key of meta.keys()) {
    if (!key.startsWith("tokenizer.") && key !== "general.architecture" && key !== "general.name") continue;
    const v = toWriteValue(meta, key);
    if (v !== undefined) out[key] = v;
  }
  writeGguf(dest, out, []);
}

/** Copies a file, writable by its owner whatever the source's mode (model stores are often read-only). */
function copy(src: string, dest: string): void {
  copyFileSync(src, dest);
  chmodSync(dest, 0o644);
}

/** Puts the checkpoint's tokenizer into `dir`; returns how to load it back. */
export function writeTokenizerFiles(ckpt: Checkpoint, dir: string): EngineTokenizer {
  const src = ckpt.tokenizer;
  switch (src.kind) {
    case "hf": {
      const files = HF_FILES.filter((f) => existsSync(join(src.dir, f)));
      for (const f of files) copy(join(src.dir, f), join(dir, f));
      return files.length ? { kind: "hf", files } : { kind: "none", files: [] };
    }
    case "llama2c":
      copy(src.file, join(dir, LLAMA2C_FILE));
      return { kind: "llama2c", files: [LLAMA2C_FILE] };
    case "gguf":
      writeVocabOnlyGguf(src.file, join(dir, GGUF_FILE));
      return { kind: "gguf", files: [GGUF_FILE] };
    case "none":
      return ckpt.format === "synthetic" ? { kind: "ascii", files: [] } : { kind: "none", files: [] };
  }
}

/** The engine's own tokenizer. */
export async function loadEngineTokenizer(dir: string, t: EngineTokenizer): Promise<Tokenizer> {
  switch (t.kind) {
    case "hf":
      return loadTokenizer(dir);
    case "llama2c":
      return loadTokenizer(join(dir, LLAMA2C_FILE));
    case "gguf":
      return loadTokenizer(join(dir, GGUF_FILE));
    case "ascii":
      return new AsciiTokenizer();
    case "none":
      throw new TokenizerError(dir, "the engine was built from a checkpoint without a tokenizer", "pass one with --tokenizer (a tokenizer.json, its directory, a GGUF file or a llama2.c tokenizer.bin)");
  }
}

/**
 * openCheckpoint: one entry point for every format, chosen by content (file magic,
 * directory contents), not by file extension.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { CheckpointError } from "../errors.js";
import { ModelFile } from "./file-io.js";
import { openGguf } from "./gguf.js";
import { LLAMA2C_MAGIC, llama2cTokenizerCount, readLlama2cHeader } from "./llama2c-format.js";
import { openLlama2c, scanLlama2cDir } from "./llama2c.js";
import { openSafetensorsDir } from "./safetensors.js";
import type { Checkpoint, CheckpointFormat } from "./types.js";

const LOOKED_FOR =
  "a Hugging Face directory (config.json + *.safetensors), a GGUF file (v2/v3), or a llama2.c .bin checkpoint (or a directory holding one)";

/** What kind of file this is, from its first bytes. */
function sniffFile(path: string): CheckpointFormat | "llama2c-tokenizer" | null {
  const f = new ModelFile(path);
  try {
    if (f.size < 8) return null;
    const head = f.read(0, 9 <= f.size ? 9 : 8, "magic");
    if (head.toString("latin1", 0, 4) === "GGUF") return "gguf";
    if (head.readUInt32LE(0) === LLAMA2C_MAGIC) return "llama2c";
    const n = head.readBigUInt64LE(0);
    if (head.length === 9 && head[8] === 0x7b && n > 1n && n <= BigInt(f.size - 8)) return "safetensors"; // 0x7b = "{"
    if (typeof readLlama2cHeader(f) !== "string") return "llama2c";
    if (llama2cTokenizerCount(f) !== null) return "llama2c-tokenizer";
    return null;
  } finally {
    f.close();
  }
}

function openDir(dir: string): Checkpoint {
  const names = readdirSync(dir);
  if (names.includes("config.json") || names.some((n) => n.endsWith(".safetensors"))) return openSafetensorsDir(dir);
  const ggufs = names.filter((n) => n.endsWith(".gguf") && statSync(join(dir, n)).isFile());
  if (ggufs.length === 1) return openGguf(join(dir, ggufs[0]));
  if (ggufs.length > 1) {
    throw new CheckpointError(dir, `holds ${ggufs.length} GGUF files (${ggufs.join(", ")})`, "pass the path of the one to use");
  }
  const scan = scanLlama2cDir(dir);
  if (scan.checkpoints.length > 0) return openLlama2c(dir);
  throw new CheckpointError(dir, `no model found: looked for ${LOOKED_FOR}`,
    names.length ? `it holds: ${names.slice(0, 8).join(", ")}${names.length > 8 ? ", ..." : ""}` : "the directory is empty");
}

/** Opens any supported checkpoint (file or directory) lazily. */
export function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) {
    throw new CheckpointError(path, "no such file or directory", `pass ${LOOKED_FOR}`);
  }
  if (statSync(path).isDirectory()) return openDir(path);
  switch (sniffFile(path)) {
    case "gguf":
      return openGguf(path);
    case "llama2c":
      return openLlama2c(path);
    case "safetensors":
      return openSafetensorsDir(dirname(path)); // config.json and the other shards live beside it
    case "llama2c-tokenizer":
      throw new CheckpointError(path, "is a llama2.c tokenizer, not a model", "pass the model .bin (or the directory holding both)");
    default:
      throw new CheckpointError(path, `format not recognised: looked for ${LOOKED_FOR}`);
  }
}

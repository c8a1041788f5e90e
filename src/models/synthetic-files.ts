/**
 * Random-weight models written to disk once, so a benchmark reads a real file (real load
 * time, the file's real dtype) without downloading anything. Each (shape, format, dtype)
 * gets one cache entry, $LLMRT_CACHE/synthetic/<key> (default ~/.cache/llmrt/synthetic/<key>),
 * written under a temporary name and renamed into place: a crashed or concurrent writer
 * never leaves a half-written entry, and the first complete one wins.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ModelConfig } from "../checkpoint/config.js";
import type { TensorDType } from "../checkpoint/types.js";
import { writeModelGguf } from "../checkpoint/write-gguf-model.js";
import { writeHfCheckpoint } from "../checkpoint/write-hf-dir.js";
import { writeLlama2c } from "../checkpoint/write-llama2c.js";
import { OptionError } from "../errors.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "./synthetic.js";

export type SyntheticFormat = "gguf" | "safetensors" | "llama2c";

/** The storage types each format can hold. */
export const FORMAT_DTYPES: Record<SyntheticFormat, readonly TensorDType[]> = {
  gguf: ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"],
  safetensors: ["f32", "f16", "bf16"],
  llama2c: ["f32", "q8_0"],
};
export const SYNTHETIC_FORMATS = Object.keys(FORMAT_DTYPES) as SyntheticFormat[];

/** GGUF files of mixed tensor types, as llama.cpp's quantize writes them (`llama-quantize ... Q4_K_M`). */
export type GgufMix = "q4_k_m";
export const GGUF_MIXES: readonly GgufMix[] = ["q4_k_m"];

/** llama.cpp's layers that get more bits in a K-quant mix: the first and last eighth, and every third between. */
function useMoreBits(layer: number, numLayers: number): boolean {
  const eighth = Math.floor(numLayers / 8);
  return layer < eighth || layer >= Math.floor((7 * numLayers) / 8) || (layer - eighth) % 3 === 2;
}

/** A Q4_K_M file's type for each matrix: Q6_K for the head and for attn_v / ffn_down of the layers above; Q4_K for the rest. */
export function q4KMTensorType(name: string, numLayers: number): TensorDType {
  if (name === "output.weight") return "q6_k";
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  return m && useMoreBits(Number(m[1]), numLayers) ? "q6_k" : "q4_k";
}
export const SYNTHETIC_DTYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"] as const;

/** Bumped when the bytes written for a key change, so old entries are not reused. */
const WRITER_VERSION = 1;
const SEED = 0;

/** "synthetic:NAME" or "synthetic:{JSON}" -> the full config; null for any other spec. */
export function syntheticSpecConfig(spec: string): ModelConfig | null {
  if (!spec.startsWith("synthetic:")) return null;
  const name = spec.slice("synthetic:".length);
  if (name.startsWith("{")) {
    let shape: Partial<ModelConfig>;
    try {
      shape = JSON.parse(name) as Partial<ModelConfig>;
    } catch (e) {
      throw new OptionError("--model", `synthetic:{...} is not valid JSON: ${(e as Error).message}`, `e.g. synthetic:{"hiddenSize":256,"numLayers":4,"numHeads":4}`);
    }
    return syntheticConfig(shape);
  }
  const preset = SYNTHETIC_PRESETS[name];
  if (!preset) throw new OptionError("--model", `unknown synthetic model "${name}"`, `choose one of: ${Object.keys(SYNTHETIC_PRESETS).map((n) => "synthetic:" + n).join(", ")}, or synthetic:{JSON shape}`);
  return syntheticConfig(preset);
}

export function syntheticCacheRoot(): string {
  return process.env.LLMRT_CACHE ? join(process.env.LLMRT_CACHE, "synthetic") : join(homedir(), ".cache", "llmrt", "synthetic");
}

/** The cache entry name: a hash of everything that decides the bytes, then format and dtype. */
export function syntheticKey(config: ModelConfig, format: SyntheticFormat, dtype: TensorDType | GgufMix): string {
  const hash = createHash("sha256").update(JSON.stringify({ v: WRITER_VERSION, seed: SEED, config })).digest("hex").slice(0, 16);
  return `${hash}-${format}-${dtype}`;
}

/** What a reader opens inside an entry: the file (gguf, llama2c) or the HF directory itself. */
function modelPathIn(dir: string, format: SyntheticFormat): string {
  return format === "gguf" ? join(dir, "model.gguf") : format === "llama2c" ? join(dir, "model.bin") : dir;
}

export function checkSyntheticFormat(format: SyntheticFormat, dtype: TensorDType | GgufMix): void {
  if (format === "gguf" && GGUF_MIXES.includes(dtype as GgufMix)) return;
  if (!FORMAT_DTYPES[format].includes(dtype as TensorDType)) {
    throw new OptionError("--model-dtype", `a ${format} file cannot store ${dtype}`, `for ${format} choose one of: ${FORMAT_DTYPES[format].join(", ")}`);
  }
}

export interface SyntheticFile {
  /** What to open: a .gguf or .bin file, or an HF directory. */
  path: string;
  /** False when an existing entry was reused. */
  written: boolean;
}

export interface WriteSyntheticOptions {
  /** Cache root (default syntheticCacheRoot()). */
  root?: string;
  /** Called after the temporary entry is complete, before the rename (tests race it). */
  beforeRename?: () => void;
}

/** The random-weight model of `config` as a `format` file in `dtype` (or a GGUF mix): reused when cached, else written once. */
export function syntheticModelFile(config: ModelConfig, format: SyntheticFormat, dtype: TensorDType | GgufMix, opts: WriteSyntheticOptions = {}): SyntheticFile {
  checkSyntheticFormat(format, dtype);
  const root = opts.root ?? syntheticCacheRoot();
  const dir = join(root, syntheticKey(config, format, dtype));
  if (existsSync(dir)) return { path: modelPathIn(dir, format), written: false };
  mkdirSync(root, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    mkdirSync(tmp);
    const src = syntheticCheckpoint(config, SEED);
    const at = modelPathIn(tmp, format);
    if (dtype === "q4_k_m") writeModelGguf(at, config, src, { dtype: "q4_k", dtypeOf: (n) => q4KMTensorType(n, config.numLayers), name: "llmrt synthetic" });
    else if (format === "gguf") writeModelGguf(at, config, src, { dtype, name: "llmrt synthetic" });
    else if (format === "safetensors") writeHfCheckpoint(at, config, src, { dtype: dtype as "f32" | "f16" | "bf16" });
    else writeLlama2c(at, config, src, dtype as "f32" | "q8_0");
    opts.beforeRename?.();
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // another writer renamed its complete copy first: use that one
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !existsSync(dir)) throw e;
      return { path: modelPathIn(dir, format), written: false };
    }
    return { path: modelPathIn(dir, format), written: true };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * A llama2.c checkpoint (.bin, v0/v1/v2) as a Checkpoint, found either as a file or as
 * the one checkpoint in a directory; its tokenizer is the sibling file that parses as a
 * llama2.c tokenizer with the model's vocabulary size, whatever its name.
 */
import { readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CheckpointError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import { ModelFile } from "./file-io.js";
import { LazyCheckpoint, type LazyTensor } from "./lazy-checkpoint.js";
import { llama2cLayout, llama2cTokenizerCount, readLlama2cHeader, type Llama2cHeader, type Llama2cTensor } from "./llama2c-format.js";
import { readTensorF32 } from "./tensor-data.js";
import type { Checkpoint, TokenizerSource } from "./types.js";

export function llama2cConfig(h: Llama2cHeader): ModelConfig {
  const headDim = h.dim / h.nHeads;
  return {
    architecture: "llama",
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim,
    maxPositionEmbeddings: h.seqLen,
    rmsNormEps: 1e-5,
    rope: { theta: 10000, style: "interleaved", dim: headDim, scaling: { type: "none" } },
    tieWordEmbeddings: h.sharedClassifier,
    attentionBias: false,
    qkNorm: false,
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
}

/** int8 groups with fp32 scales (export.py version 2) -> float32: [numel]. */
function readQ8Groups(file: ModelFile, t: Llama2cTensor, groupSize: number): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const q = new Int8Array(n);
  file.readInto(t.offset, new Uint8Array(q.buffer), `tensor ${t.name}`);
  const scales = readTensorF32({ file, offset: t.offset + n, dtype: "f32", shape: [n / groupSize], name: `${t.name} scales` });
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = q[i] * scales[Math.floor(i / groupSize)];
  return out;
}

export interface Llama2cScan {
  checkpoints: string[];
  tokenizers: { file: string; count: number }[];
}

/** Classifies the regular files of a directory by content (never by name). */
export function scanLlama2cDir(dir: string): Llama2cScan {
  const scan: Llama2cScan = { checkpoints: [], tokenizers: [] };
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (!statSync(p).isFile()) continue;
    let f: ModelFile;
    try {
      f = new ModelFile(p);
    } catch {
      continue;
    }
    try {
      const h = readLlama2cHeader(f);
      if (typeof h !== "string" && llama2cLayout(h).end === f.size) scan.checkpoints.push(p);
      else {
        const count = llama2cTokenizerCount(f);
        if (count !== null) scan.tokenizers.push({ file: p, count });
      }
    } catch {
      // unreadable or not ours: not a llama2.c file
    } finally {
      f.close();
    }
  }
  return scan;
}

/** The tokenizer among `found` whose vocabulary fits the model (tokenizer.bin wins a tie). */
function pickTokenizer(found: Llama2cScan["tokenizers"], vocabSize: number): TokenizerSource {
  const fits = found.filter((t) => t.count === vocabSize);
  const pick = fits.length === 1 ? fits[0] : fits.find((t) => basename(t.file) === "tokenizer.bin");
  return pick ? { kind: "llama2c", file: pick.file } : { kind: "none" };
}

export function openLlama2c(path: string): Checkpoint {
  let modelPath = path;
  let dir = dirname(path);
  let scan: Llama2cScan | null = null;
  if (statSync(path).isDirectory()) {
    dir = path;
    scan = scanLlama2cDir(path);
    if (scan.checkpoints.length !== 1) {
      const what = scan.checkpoints.length ? `${scan.checkpoints.length} llama2.c checkpoints (${scan.checkpoints.map((p) => basename(p)).join(", ")})` : "no llama2.c checkpoint";
      throw new CheckpointError(path, `holds ${what}`, "pass the path of the .bin checkpoint itself");
    }
    modelPath = scan.checkpoints[0];
  }
  const file = new ModelFile(modelPath);
  try {
    const h = readLlama2cHeader(file);
    if (typeof h === "string") throw new CheckpointError(modelPath, h);
    const layout = llama2cLayout(h);
    if (layout.end !== file.size) {
      throw new CheckpointError(modelPath,
        `llama2.c v${h.version} header implies ${layout.end} bytes but the file has ${file.size}`,
        file.size < layout.end ? "the file is truncated; download it again" : "the file does not match its header (wrong format or extra data)");
    }
    const config = llama2cConfig(h);
    const table = new Map<string, LazyTensor>();
    for (const t of layout.tensors) {
      const dtype = t.storage === "q8" ? "q8_0" : "f32";
      const read = t.storage === "q8"
        ? () => readQ8Groups(file, t, h.groupSize)
        : () => readTensorF32({ file, offset: t.offset, dtype: "f32", shape: t.shape, name: t.name });
      table.set(t.name, { info: { name: t.name, dtype, shape: t.shape }, read });
    }
    scan ??= scanLlama2cDir(dir);
    const tokenizer = pickTokenizer(scan.tokenizers, config.vocabSize);
    return new LazyCheckpoint("llama2c", modelPath, config, tokenizer, table, () => file.close());
  } catch (e) {
    file.close();
    throw e;
  }
}

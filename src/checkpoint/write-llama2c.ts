/**
 * Writes a llama2.c checkpoint (export.py's layouts, read back by llama2c.ts): v1 with
 * fp32 weights, or v2 with every matrix as int8 groups plus fp32 scales (dtype q8_0).
 * q/k rows go to the interleaved RoPE layout run.c computes with. llama2.c has no
 * fields for biases, q/k norms, sliding windows or RoPE variants: such configs are refused.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { UnsupportedModelError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import { llama2cLayout, LLAMA2C_MAGIC, type Llama2cHeader } from "./llama2c-format.js";
import { toRopeLayout } from "./rope-permute.js";
import { numel } from "./tensor-data.js";
import { getTensor, hasTensor, type CanonicalTensors } from "./tensor-encode.js";

export type Llama2cDType = "f32" | "q8_0";

function checkExpressible(c: ModelConfig): void {
  const bad = (what: string) => {
    throw new UnsupportedModelError(`writeLlama2c: llama2.c files cannot hold ${what}`, "write GGUF or safetensors instead");
  };
  if (c.architecture !== "llama") bad(`architecture ${c.architecture}`);
  if (c.attentionBias) bad("q/k/v biases");
  if (c.qkNorm) bad("q/k norms");
  if (c.slidingWindow !== null) bad("a sliding window");
  if (c.headDim * c.numHeads !== c.hiddenSize) bad(`headDim ${c.headDim} != hiddenSize / numHeads`);
  if (c.rope.dim !== c.headDim || c.rope.theta !== 10000 || c.rope.scaling.type !== "none") bad("RoPE other than theta 10000 over the whole head");
  if (c.rmsNormEps !== 1e-5) bad(`rmsNormEps ${c.rmsNormEps} (run.c uses 1e-5)`);
}

/** export.py's group size: 64, halved until it divides dim. */
function groupSizeFor(dim: number): number {
  let g = 64;
  while (dim % g !== 0) g /= 2;
  return g;
}

/** Symmetric int8 per group (export.py quantize_q80): int8[n] then f32 scales[n / g]. */
function q80(w: Float32Array, g: number): Uint8Array {
  const n = w.length;
  const out = new Uint8Array(n + (n / g) * 4);
  const q = new Int8Array(out.buffer, 0, n);
  const scales = new DataView(out.buffer, n);
  for (let s = 0; s < n / g; s++) {
    let max = 0;
    for (let i = s * g; i < (s + 1) * g; i++) max = Math.max(max, Math.abs(w[i]));
    const scale = max / 127;
    for (let i = s * g; i < (s + 1) * g; i++) q[i] = scale === 0 ? 0 : Math.round(w[i] / scale);
    scales.setFloat32(s * 4, scale, true);
  }
  return out;
}

export function writeLlama2c(file: string, config: ModelConfig, src: CanonicalTensors, dtype: Llama2cDType = "f32"): void {
  checkExpressible(config);
  const h: Llama2cHeader = {
    version: dtype === "q8_0" ? 2 : 1,
    dim: config.hiddenSize,
    hiddenDim: config.intermediateSize,
    nLayers: config.numLayers,
    nHeads: config.numHeads,
    nKvHeads: config.numKvHeads,
    vocabSize: config.vocabSize,
    seqLen: config.maxPositionEmbeddings,
    sharedClassifier: config.tieWordEmbeddings,
    groupSize: dtype === "q8_0" ? groupSizeFor(config.hiddenSize) : 0,
  };
  const head = Buffer.alloc(256);
  head.writeUInt32LE(LLAMA2C_MAGIC, 0);
  head.writeInt32LE(h.version, 4);
  [h.dim, h.hiddenDim, h.nLayers, h.nHeads, h.nKvHeads, h.vocabSize, h.seqLen].forEach((v, i) => head.writeInt32LE(v, 8 + 4 * i));
  head.writeUInt8(h.sharedClassifier ? 1 : 0, 36);
  if (h.version === 2) head.writeInt32LE(h.groupSize, 37);
  const fd = openSync(file, "w");
  try {
    writeSync(fd, head);
    for (const t of llama2cLayout(h).tensors) {
      const w = hasTensor(src, t.name) ? getTensor(src, t.name)! : undefined;
      if (!w || w.length !== numel(t.shape)) throw new RangeError(`writeLlama2c: tensor ${t.name} [${t.shape.join(", ")}] is missing or has the wrong size`);
      const v = toRopeLayout(config, t.name, w, config.rope.style, "interleaved");
      writeSync(fd, t.storage === "q8" ? q80(v, h.groupSize) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}

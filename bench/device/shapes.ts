/**
 * Model shapes of the GPU benchmarks (random "dummy" weights; only the shapes matter).
 * bench/device/hf_bench.py builds the same shapes in transformers: keep the two in step.
 */
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { syntheticConfig } from "../../src/models/synthetic.js";

const SHAPES: Record<string, Partial<ModelConfig>> = {
  // for dry runs of the script on the CPU emulator
  tiny: { hiddenSize: 128, intermediateSize: 256, numLayers: 2, numHeads: 2, numKvHeads: 1, vocabSize: 256, maxPositionEmbeddings: 1024 },
  // stories110M's shape (llama2.c)
  "llama-110m": { hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 12, vocabSize: 32000, maxPositionEmbeddings: 2048 },
  "tinyllama-1.1b": { hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, vocabSize: 32000, maxPositionEmbeddings: 2048 },
  "llama-3-8b": {
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    vocabSize: 128256,
    maxPositionEmbeddings: 8192,
    rope: { theta: 500000, style: "neox", dim: 128, scaling: { type: "none" } },
  },
};

export const QUICK_SHAPES = ["llama-110m", "tinyllama-1.1b"];
export const BIG_SHAPES = ["llama-3-8b"];

export function shapeConfig(name: string): ModelConfig {
  const s = SHAPES[name];
  if (!s) throw new Error(`unknown shape ${name}; have ${Object.keys(SHAPES).join(", ")}`);
  return syntheticConfig({ rmsNormEps: 1e-5, ...s });
}

/**
 * llmrt bench --load-format dummy: an engine of the model's shape whose weights are
 * random values generated on the GPU (vLLM's dummy loading), so big shapes benchmark
 * without a checkpoint and without host memory for their weights. The cuda target only.
 */
import { CudaBackend } from "../backends/cuda/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import { planEngine } from "../engine/build.js";
import { Engine } from "../engine/engine.js";
import { resolveBuildOptions, type EngineDType } from "../engine/options.js";
import { materializeWeight } from "../engine/weights.js";
import { OptionError } from "../errors.js";

export interface DummyEngineOptions {
  target: string;
  dtype: EngineDType;
  maxSeqLen: number;
  maxSeqs: number;
  maxBatchTokens: number;
  maxLogitRows: number;
  blockSize?: number;
}

export function dummyEngine(config: ModelConfig, o: DummyEngineOptions): Engine {
  if (o.target !== "cuda") throw new OptionError("--load-format", `dummy weights are generated on the GPU: it needs --target cuda, not ${o.target}`);
  const options = resolveBuildOptions(config, { dtype: o.dtype, target: "cuda", maxBatchTokens: o.maxBatchTokens, maxSeqs: o.maxSeqs, maxSeqLen: o.maxSeqLen, maxLogitRows: o.maxLogitRows });
  const plan = planEngine(config, options);
  // folded constants (RoPE frequencies) are computed here; every other weight is random on the device
  const host = new Map<string, Float32Array>();
  for (const [name, d] of plan.graph.tensors) {
    if (d.kind === "weight" && d.source?.kind === "fold") host.set(name, materializeWeight(plan.graph, name, { readF32: () => new Float32Array(0) }));
  }
  const blockSize = o.blockSize ?? 16;
  const kv = { numLayers: config.numLayers, numBlocks: o.maxSeqs * Math.ceil(o.maxSeqLen / blockSize), blockSize, numKvHeads: config.numKvHeads, headDim: config.headDim };
  const act = o.dtype === "fp32" ? "f32" : o.dtype === "fp16" ? "f16" : "bf16";
  const bound = new CudaBackend({ loadFormat: "dummy", dtype: act }).bind(plan.graph, host, kv, plan.memory);
  return new Engine(config, plan.graph, bound, o.maxSeqLen, { maxBatchTokens: o.maxBatchTokens, maxLogitRows: o.maxLogitRows, maxSeqs: o.maxSeqs, origin: "dummy weights" }, plan.report);
}

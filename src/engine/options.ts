/**
 * Build options: what an engine is built for. They size the memory plan and are stored
 * in engine.json; a run may ask for less, never more.
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { OptionError } from "../errors.js";
import { W8A8_TARGETS, resolveQuant, type QuantOptions } from "../quant/options.js";

/** fp8: the cuda target's FP8 (e4m3) linear weights, one scale per tensor, stored bf16 in the engine and quantized on the GPU at load. */
export type EngineDType = "fp32" | "fp16" | "bf16" | "fp8";
export const ENGINE_DTYPES: readonly EngineDType[] = ["fp32", "fp16", "bf16", "fp8"];

export interface BuildOptions {
  /** Storage of the weight matrices; vectors (norms, biases) stay fp32. Arithmetic is fp32 throughout. */
  dtype: EngineDType;
  /** The backend whose weight layout the engine packs. */
  target: string;
  /** Most tokens in one step (rows T of the activation arena). */
  maxBatchTokens: number;
  /** Most sequences in flight at once. */
  maxSeqs: number;
  /** Longest sequence (prompt + output). */
  maxSeqLen: number;
  /** Most logit rows one step may return (rows R of the arena): maxSeqs, or more for prompt logprobs. */
  maxLogitRows: number;
  /** Linear-layer weights stored packed (int8-wo / int4-wo); absent = the engine dtype. */
  quant?: QuantOptions;
  /** cuda target: the GPU architecture its kernels are compiled for (default sm_90: H100, H200). */
  gpuArch?: string;
}

export const DEFAULT_TARGET = "reference";

export function resolveBuildOptions(config: ModelConfig, o: Partial<BuildOptions> = {}): BuildOptions {
  const dtype = o.dtype ?? "fp32";
  if (!ENGINE_DTYPES.includes(dtype)) throw new OptionError("--dtype", `unknown dtype "${dtype}"`, `choose one of ${ENGINE_DTYPES.join(", ")}`);
  if (dtype === "fp8" && o.target !== "cuda") throw new OptionError("--dtype", `fp8 weights run on the cuda target only, not "${o.target ?? DEFAULT_TARGET}"`, "use --target cuda (Ada or Hopper GPUs), or --quant int8-wo for the cpu and reference targets");
  if (dtype === "fp8" && o.quant) throw new OptionError("--dtype", "fp8 weights and --quant are two weight formats; pick one");
  if (o.quant?.scheme === "w8a8" && !W8A8_TARGETS.includes(o.target ?? DEFAULT_TARGET)) {
    throw new OptionError("--quant", `w8a8 (int8 activations and weights) runs on the ${W8A8_TARGETS.join(" and ")} targets only, not "${o.target}"`, `build with --target ${W8A8_TARGETS[0]}, or use --quant int8-wo (weight-only) for this target`);
  }
  const maxSeqs = o.maxSeqs ?? 16;
  const maxSeqLen = o.maxSeqLen ?? Math.min(config.maxPositionEmbeddings, 4096);
  const out: BuildOptions = {
    dtype,
    target: o.target ?? DEFAULT_TARGET,
    maxBatchTokens: o.maxBatchTokens ?? 512,
    maxSeqs,
    maxSeqLen,
    maxLogitRows: o.maxLogitRows ?? maxSeqs,
    ...(o.quant ? { quant: resolveQuant(o.quant) } : {}),
    ...(o.target === "cuda" ? { gpuArch: o.gpuArch ?? "sm_90" } : {}),
  };
  for (const k of ["maxBatchTokens", "maxSeqs", "maxSeqLen", "maxLogitRows"] as const) {
    if (!Number.isInteger(out[k]) || out[k] < 1) throw new OptionError(k, `must be a positive integer, got ${out[k]}`);
  }
  return out;
}

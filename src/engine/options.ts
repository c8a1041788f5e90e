/**
 * Build options: what an engine is built for. They size the memory plan and are stored
 * in engine.json; a run may ask for less, never more.
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { OUTPUT, TOKEN_EMBD } from "../checkpoint/names.js";
import { numel } from "../checkpoint/tensor-data.js";
import type { Checkpoint } from "../checkpoint/types.js";
import { OptionError } from "../errors.js";
import { W8A8_TARGETS, resolveQuant, type QuantOptions } from "../quant/options.js";

/** fp8: the cuda target's FP8 (e4m3) linear weights, one scale per tensor, stored bf16 in the engine and quantized on the GPU at load. */
export type EngineDType = "fp32" | "fp16" | "bf16" | "fp8";
export const ENGINE_DTYPES: readonly EngineDType[] = ["fp32", "fp16", "bf16", "fp8"];

/** What a user may ask for: an engine dtype, or "auto" (the default), which resolveBuildOptions turns into one from the checkpoint and target. */
export type DTypeChoice = EngineDType | "auto";
export const DTYPE_CHOICES: readonly DTypeChoice[] = ["auto", ...ENGINE_DTYPES];

export interface BuildOptions {
  /** Storage of the weight matrices, "auto" already resolved; vectors (norms, biases) stay fp32. Arithmetic is fp32 throughout. */
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

/** Build options as asked for: any of them left out, the dtype possibly "auto". */
export type BuildRequest = Partial<Omit<BuildOptions, "dtype">> & { dtype?: DTypeChoice };

/** The build API's own default (in-memory builds, tests); the CLI and LLM.load resolve --target auto instead (targets.ts resolveTarget). */
export const DEFAULT_TARGET = "reference";

/** A --dtype value, or the OptionError naming the choices. */
export function parseDTypeChoice(value: string): DTypeChoice {
  if (!DTYPE_CHOICES.includes(value as DTypeChoice)) throw new OptionError("--dtype", `unknown dtype "${value}"`, `choose one of ${DTYPE_CHOICES.join(", ")}`);
  return value as DTypeChoice;
}

/** What "auto" reads of a checkpoint: its tensors' storage types, and whether it is AWQ / GPTQ. */
export type CheckpointWeights = Pick<Checkpoint, "tensors" | "quantMethod">;

/** How most elements of a checkpoint's matmul weights are stored. */
export type LinearStorage = "f32" | "bf16" | "f16" | "quantized";

/**
 * The storage most elements of the checkpoint's matmul weights have: its 2-D tensors, less
 * the embedding table unless it is tied as the output matrix (a lookup table reads one row).
 */
export function linearStorage(weights: CheckpointWeights): LinearStorage {
  if (weights.quantMethod) return "quantized"; // AWQ / GPTQ linears read as f32 but are packed
  const tensors = weights.tensors();
  const tied = !tensors.some((t) => t.name === OUTPUT);
  const elements = new Map<LinearStorage, number>();
  for (const t of tensors) {
    if (t.shape.length !== 2 || (t.name === TOKEN_EMBD && !tied)) continue;
    const kind = t.dtype === "f32" || t.dtype === "bf16" || t.dtype === "f16" ? t.dtype : "quantized"; // GGML blocks
    elements.set(kind, (elements.get(kind) ?? 0) + numel(t.shape));
  }
  let most: LinearStorage = "f32";
  for (const [kind, n] of elements) if (n > (elements.get(most) ?? 0)) most = kind;
  return most;
}

/**
 * "auto", as vLLM and TensorRT-LLM pick it. cuda: the checkpoint's own 16-bit type, bf16
 * for quantized weights (what the unpacked ones widen to), fp32 for an fp32 checkpoint (as
 * TensorRT-LLM keeps it). Other targets: fp32, which already keeps matrices that are
 * exactly bf16 / fp16 in 16 bits (weights.ts encodeStored), at fp32 arithmetic's accuracy.
 */
export function autoDType(target: string, weights?: CheckpointWeights): EngineDType {
  if (target !== "cuda") return "fp32";
  if (!weights) throw new Error("dtype auto for the cuda target is resolved from the checkpoint: pass its tensors to resolveBuildOptions");
  const storage = linearStorage(weights);
  return storage === "f16" ? "fp16" : storage === "f32" ? "fp32" : "bf16";
}

/** The build options in full, "auto" resolved against `weights` (the checkpoint; needed only for auto on the cuda target). */
export function resolveBuildOptions(config: ModelConfig, o: BuildRequest = {}, weights?: CheckpointWeights): BuildOptions {
  const asked = parseDTypeChoice(o.dtype ?? "auto");
  const dtype = asked === "auto" ? autoDType(o.target ?? DEFAULT_TARGET, weights) : asked;
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

/**
 * Build targets: the backends an engine can be built for. A target owns the layout its
 * weights are packed in; an engine built for one target does not load on another.
 */
import type { Backend } from "../backends/backend.js";
import { CpuBackend } from "../backends/cpu/backend.js";
import { CudaBackend } from "../backends/cuda/backend.js";
import { compileEngineKernels, DEFAULT_GPU_ARCH } from "../backends/cuda/engine-files.js";
import { CPU_LAYOUT } from "../backends/cpu/layout.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import { OptionError } from "../errors.js";
import type { BuildOptions } from "./options.js";
import type { PackedMatrix } from "../quant/packed.js";
import { describePackedForCuda } from "../backends/cuda/packed-upload.js";

export interface Target {
  name: string;
  description: string;
  /** How weights.bin lays out each tensor for this target. */
  layout: string;
  /** The backend; `engineDir` is the engine being loaded (a target may keep files there), `build` its build options. */
  createBackend(engineDir?: string, build?: Pick<BuildOptions, "dtype">): Backend;
  /** Files to add to an engine dir at build time, by relative path (the cuda target's cubins). */
  buildFiles?(options: BuildOptions): Promise<Map<string, Uint8Array>>;
  /** A build-log line on how the backend will hold the engine's packed weights (the cuda target: which stay packed, which it dequantizes and why). */
  describePacked?(packed: { name: string; packed: PackedMatrix }[], options: BuildOptions): string | undefined;
}

export const TARGETS: Record<string, Target> = {
  reference: {
    name: "reference",
    description: "plain TypeScript, the definition of every op (slow, exact)",
    layout: "row-major [out, in]; fp16/bf16 widened to fp32 at load",
    createBackend: () => new ReferenceBackend(),
  },
  cpu: {
    name: "cpu",
    description: "WebAssembly SIMD kernels on a pool of threads (--threads, default all cores)",
    layout: CPU_LAYOUT,
    createBackend: () => new CpuBackend(),
  },
  cuda: {
    name: "cuda",
    description: "NVIDIA GPUs through the CUDA driver API (kernels compiled for --gpu-arch, default sm_90; cuBLASLt where found)",
    layout: "row-major [out, in] as built; bf16/fp16 engines compute in that type, fp32 engines in fp32",
    // fp8 engines: bf16 activations, linear weights quantized to e4m3 on the GPU at load
    createBackend: (engineDir, build) => new CudaBackend({ engineDir, ...(build?.dtype === "fp8" ? { dtype: "bf16", weightFormat: "fp8" } : {}) }),
    buildFiles: (o) => compileEngineKernels(o.gpuArch ?? DEFAULT_GPU_ARCH),
    describePacked: (packed, o) => describePackedForCuda(packed, o.dtype),
  },
};

export function targetByName(name: string): Target {
  const t = TARGETS[name];
  if (!t) throw new OptionError("--target", `unknown target "${name}"`, `choose one of: ${Object.keys(TARGETS).join(", ")}`);
  return t;
}

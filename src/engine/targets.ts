/**
 * Build targets: the backends an engine can be built for. A target owns the layout its
 * weights are packed in; an engine built for one target does not load on another.
 */
import type { Backend } from "../backends/backend.js";
import { CpuBackend } from "../backends/cpu/backend.js";
import { CudaBackend } from "../backends/cuda/backend.js";
import { compileEngineKernels, DEFAULT_GPU_ARCH } from "../backends/cuda/engine-files.js";
import { findNvcc } from "../backends/cuda/compile.js";
import { probeGpu } from "../backends/cuda/driver.js";
import { Nvrtc } from "../backends/cuda/nvrtc.js";
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
  /** The backend; `engineDir` is the engine being loaded (a target may keep files there), `build` its build options, `run` how to run it. */
  createBackend(engineDir?: string, build?: Pick<BuildOptions, "dtype">, run?: { threads?: number }): Backend;
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
    createBackend: (_dir, _build, run) => new CpuBackend({ threads: run?.threads }),
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

/** The target a user gets by not naming one: the fastest this machine runs (resolveTarget). */
export const AUTO_TARGET = "auto";

export interface TargetChoice {
  target: string;
  /** Why auto chose it, for a log line ("no usable GPU: cpu"). */
  reason?: string;
  /** The cpu target's threads, where it runs there. */
  threads?: number;
}

/** "cpu, 2 thread(s) (--target auto: no usable GPU)": where an engine runs, for a log line. */
export function describeTarget(t: TargetChoice): string {
  return `${t.target}${t.threads ? `, ${t.threads} thread(s)` : ""}${t.reason ? ` (--target auto: ${t.reason})` : ""}`;
}

/** What auto looks at: a visible GPU, and a way to compile the kernels for it. */
export interface MachineProbe {
  gpu(): { devices: number; computeCapability: [number, number] } | null;
  canCompileKernels(): boolean;
}

const systemProbe: MachineProbe = {
  gpu: () => probeGpu(),
  canCompileKernels: () => findNvcc() !== null || Nvrtc.tryOpen() !== null,
};

/**
 * "auto" (or nothing) -> cuda where a GPU is visible and its kernels can be compiled (nvcc
 * or NVRTC), else cpu, as vLLM picks its platform; the reference backend is for reading and
 * testing, chosen only by name. Any other name is checked and returned as it is.
 */
export function resolveTarget(name: string | undefined, probe: MachineProbe = systemProbe): TargetChoice {
  if (name !== undefined && name !== AUTO_TARGET) return { target: targetByName(name).name };
  const gpu = probe.gpu();
  if (!gpu) return { target: "cpu", reason: "no usable GPU" };
  const [major, minor] = gpu.computeCapability;
  if (!probe.canCompileKernels()) return { target: "cpu", reason: `a GPU (sm_${major}${minor}) is visible, but neither nvcc nor NVRTC is there to compile the cuda target's kernels` };
  return { target: "cuda", reason: `${gpu.devices} GPU(s), sm_${major}${minor}` };
}

export function targetByName(name: string): Target {
  const t = TARGETS[name];
  if (!t) throw new OptionError("--target", `unknown target "${name}"`, `choose one of: ${[AUTO_TARGET, ...Object.keys(TARGETS)].join(", ")}`);
  return t;
}

/**
 * The cubins an engine built for the cuda target carries, as a TensorRT engine is built
 * for one GPU: kernels/<unit>.<arch>.cubin in the engine dir, compiled at build time
 * for --gpu-arch with nvcc (or NVRTC where nvcc is absent). No GPU is needed to build.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CudaUnavailableError } from "../../errors.js";
import { compileWithNvcc, compileWithNvrtc, findNvcc, normalizeArch, NVCC_ENV, type Cubins } from "./compile.js";
import { KERNEL_UNITS, type KernelUnit } from "./kernel-sources.js";
import { Nvrtc } from "./nvrtc.js";

export const ENGINE_KERNELS_DIR = "kernels";
export const DEFAULT_GPU_ARCH = "sm_90";

export function cubinFile(unit: string, arch: string): string {
  return `${ENGINE_KERNELS_DIR}/${unit}.${arch}.cubin`;
}

/** Compiles every kernel unit for `arch`: { engine-relative path: cubin }. */
export async function compileEngineKernels(arch = DEFAULT_GPU_ARCH): Promise<Map<string, Uint8Array>> {
  arch = normalizeArch(arch);
  let cubins: Cubins;
  const nvcc = findNvcc();
  if (nvcc) cubins = await compileWithNvcc(arch, nvcc);
  else {
    const nvrtc = Nvrtc.tryOpen();
    if (!nvrtc) throw new CudaUnavailableError("building for the cuda target compiles its kernels, but neither nvcc nor NVRTC was found", [], `install the CUDA toolkit (nvcc) or set ${NVCC_ENV}`);
    cubins = compileWithNvrtc(arch, nvrtc);
  }
  return new Map([...cubins].map(([unit, bin]) => [cubinFile(unit, arch), bin]));
}

/** The architectures an engine dir has cubins for. */
export function engineArchs(dir: string): string[] {
  const k = join(dir, ENGINE_KERNELS_DIR);
  if (!existsSync(k)) return [];
  const archs = new Set(readdirSync(k).map((f) => /^[a-z_]+\.(sm_\d+a?)\.cubin$/.exec(f)?.[1]).filter(Boolean) as string[]);
  return [...archs].filter((a) => KERNEL_UNITS.every((u) => existsSync(join(k, `${u}.${a}.cubin`)))).sort();
}

/** The engine's cubins for `arch`, or null where it has none. */
export function readEngineCubins(dir: string, arch: string): Cubins | null {
  if (!engineArchs(dir).includes(arch)) return null;
  return new Map(KERNEL_UNITS.map((u): [KernelUnit, Uint8Array] => [u, new Uint8Array(readFileSync(join(dir, cubinFile(u, arch))))]));
}

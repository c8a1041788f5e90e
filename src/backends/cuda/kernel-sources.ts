/**
 * The CUDA C++ sources in ./kernels: where they are (next to this module, in dist after
 * a build, or LLMRT_CUDA_KERNELS_DIR in a bundle), which files are compilation units,
 * and a content hash of them all (the cache key of compiled cubins).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CudaUnavailableError } from "../../errors.js";

export const KERNELS_DIR_ENV = "LLMRT_CUDA_KERNELS_DIR";

/** The compilation units, one cubin each. */
export const KERNEL_UNITS = [
  "elementwise",
  "norm",
  "rope_kv",
  "attention_decode",
  "attention_tiled",
  "attention_mma",
  "attention_prefill",
  "gemm",
  "sampling",
  "quant",
] as const;
export type KernelUnit = (typeof KERNEL_UNITS)[number];

export function kernelsDir(): string {
  const env = process.env[KERNELS_DIR_ENV];
  if (env) return env;
  return fileURLToPath(new URL("./kernels/", import.meta.url));
}

export function emuDir(): string {
  return join(kernelsDir(), "..", "emu");
}

/** Every source the units may include: { file name: text }. */
export function readKernelSources(dir = kernelsDir()): Map<string, string> {
  if (!existsSync(dir)) throw new CudaUnavailableError(`the CUDA kernel sources are missing (${dir})`, [], `set ${KERNELS_DIR_ENV} to the folder holding elementwise.cu and the others`);
  const out = new Map<string, string>();
  for (const f of readdirSync(dir).sort()) if (f.endsWith(".cu") || f.endsWith(".cuh")) out.set(f, readFileSync(join(dir, f), "utf8"));
  for (const u of KERNEL_UNITS) {
    if (!out.has(`${u}.cu`)) throw new CudaUnavailableError(`kernel source ${u}.cu is missing from ${dir}`);
  }
  return out;
}

/** sha256 over every source and the given extra strings (compiler, flags), hex. */
export function hashSources(sources: Map<string, string>, ...extra: string[]): string {
  const h = createHash("sha256");
  for (const [name, text] of sources) h.update(name).update("\0").update(text).update("\0");
  for (const e of extra) h.update(e).update("\0");
  return h.digest("hex");
}

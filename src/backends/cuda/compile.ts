/**
 * Kernel units -> cubins for one GPU architecture, ahead of time with nvcc or at run time
 * with NVRTC, cached on disk by a hash of the sources, the compiler and the flags
 * (LLMRT_CUDA_CACHE, default <tmpdir>/llmrt-cuda). An engine built for the cuda target
 * stores its cubins; a load finds them there first.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { threadId } from "node:worker_threads";
import { CudaError, CudaUnavailableError } from "../../errors.js";
import { hashSources, KERNEL_UNITS, kernelsDir, readKernelSources, type KernelUnit } from "./kernel-sources.js";
import { Nvrtc } from "./nvrtc.js";

export const CACHE_ENV = "LLMRT_CUDA_CACHE";
export const NVCC_ENV = "LLMRT_NVCC";

/** nvcc flags of a cubin build; -arch=sm_XY (or sm_90a) is added per architecture. */
export const NVCC_FLAGS = ["-std=c++17", "-O3", "-cubin"];

export type Cubins = Map<KernelUnit, Uint8Array>;

export function cacheDir(): string {
  return process.env[CACHE_ENV] ?? join(tmpdir(), "llmrt-cuda");
}

/** "sm_90" / "sm_90a" / "90" -> "sm_90"... ; throws on anything else. */
export function normalizeArch(arch: string): string {
  const m = /^(?:sm_|compute_)?(\d{2,3})(a?)$/.exec(arch.trim());
  if (!m) throw new CudaUnavailableError(`"${arch}" is not a GPU architecture`, [], "use sm_80, sm_86, sm_89, sm_90 (H100/H200), ...");
  return `sm_${m[1]}${m[2]}`;
}

/** The nvcc to use: LLMRT_NVCC, else `nvcc` on PATH, else the toolkit's; null if none runs. */
export function findNvcc(): string | null {
  const candidates = [process.env[NVCC_ENV], "nvcc", "/usr/local/cuda/bin/nvcc"].filter(Boolean) as string[];
  for (const c of candidates) {
    try {
      execFileSync(c, ["--version"], { stdio: "ignore", timeout: 20000 });
      return c;
    } catch {
      // try the next
    }
  }
  return null;
}

function nvccVersion(nvcc: string): string {
  return execFileSync(nvcc, ["--version"], { encoding: "utf8" }).trim().split("\n").pop() ?? "";
}

/** A temporary file's suffix, unique per thread: the ranks of a sharded engine are threads of one process that may compile at once. */
const TMP_TAG = `${process.pid}-${threadId}`;

function cachePath(key: string, unit: string, arch: string): string {
  return join(cacheDir(), `${unit}.${arch}.${key.slice(0, 16)}.cubin`);
}

function writeAtomic(path: string, data: Uint8Array): void {
  mkdirSync(join(path, ".."), { recursive: true });
  const tmp = `${path}.${TMP_TAG}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function nvccArgs(unit: string, arch: string, out: string): string[] {
  return [...NVCC_FLAGS, `-arch=${arch}`, "-o", out, join(kernelsDir(), `${unit}.cu`)];
}

/** Compiles every unit for `arch` with nvcc, `parallel` at a time; cached. */
export async function compileWithNvcc(arch: string, nvcc = findNvcc(), parallel = 2): Promise<Cubins> {
  if (!nvcc) throw new CudaUnavailableError("nvcc was not found", ["PATH", "/usr/local/cuda/bin", NVCC_ENV], `install the CUDA toolkit or set ${NVCC_ENV}`);
  arch = normalizeArch(arch);
  const key = hashSources(readKernelSources(), nvccVersion(nvcc), ...NVCC_FLAGS);
  const out: Cubins = new Map();
  const queue = [...KERNEL_UNITS];
  const run = promisify(execFile);
  const worker = async () => {
    for (let unit = queue.shift(); unit; unit = queue.shift()) {
      const path = cachePath(key, unit, arch);
      if (!existsSync(path)) {
        const tmp = `${path}.${TMP_TAG}.build`;
        mkdirSync(cacheDir(), { recursive: true });
        try {
          await run(nvcc, nvccArgs(unit, arch, tmp), { maxBuffer: 16 << 20 });
        } catch (e) {
          const err = e as { stderr?: string; message: string };
          throw new CudaError("nvcc", 1, "compile error", `${unit}.cu for ${arch}:\n${err.stderr ?? err.message}`);
        }
        renameSync(tmp, path);
      }
      out.set(unit, new Uint8Array(readFileSync(path)));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return new Map(KERNEL_UNITS.map((u) => [u, out.get(u)!]));
}

/**
 * Synchronous nvcc compile (for a load that finds no stored cubins): the missing units
 * compile in parallel in one shell, each to its own file.
 */
export function compileWithNvccSync(arch: string, nvcc: string): Cubins {
  arch = normalizeArch(arch);
  const key = hashSources(readKernelSources(), nvccVersion(nvcc), ...NVCC_FLAGS);
  const todo = KERNEL_UNITS.filter((u) => !existsSync(cachePath(key, u, arch)));
  if (todo.length) {
    mkdirSync(cacheDir(), { recursive: true });
    const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    const jobs = todo.map((u) => `${[nvcc, ...nvccArgs(u, arch, `${cachePath(key, u, arch)}.${TMP_TAG}.build`)].map(q).join(" ")} & pids="$pids $!"`);
    const script = `pids=""\n${jobs.join("\n")}\nfail=0; for p in $pids; do wait $p || fail=1; done; exit $fail`;
    try {
      execFileSync("bash", ["-c", script], { stdio: ["ignore", "ignore", "pipe"], maxBuffer: 16 << 20 });
    } catch (e) {
      throw new CudaError("nvcc", 1, "compile error", `kernels for ${arch}:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? ""}`);
    }
    for (const u of todo) renameSync(`${cachePath(key, u, arch)}.${TMP_TAG}.build`, cachePath(key, u, arch));
  }
  return new Map(KERNEL_UNITS.map((u) => [u, new Uint8Array(readFileSync(cachePath(key, u, arch)))]));
}

/** Include folders holding cuda_bf16.h and friends, for NVRTC. */
export function cudaIncludeDirs(): string[] {
  const dirs = [process.env.CUDA_HOME && join(process.env.CUDA_HOME, "include"), "/usr/local/cuda/include"].filter(Boolean) as string[];
  return dirs.filter((d) => existsSync(join(d, "cuda_bf16.h")));
}

/** Compiles every unit for `arch` with NVRTC; cached. */
export function compileWithNvrtc(arch: string, nvrtc: Nvrtc, includeDirs = cudaIncludeDirs()): Cubins {
  arch = normalizeArch(arch);
  const sources = readKernelSources();
  const headers = new Map([...sources].filter(([n]) => n.endsWith(".cuh")));
  const opts = includeDirs.map((d) => `-I${d}`);
  const key = hashSources(sources, `nvrtc ${nvrtc.version().join(".")}`, ...opts);
  const out: Cubins = new Map();
  for (const unit of KERNEL_UNITS) {
    const path = cachePath(key, unit, arch);
    if (!existsSync(path)) writeAtomic(path, nvrtc.compile(`${unit}.cu`, sources.get(`${unit}.cu`)!, headers, arch, opts));
    out.set(unit, new Uint8Array(readFileSync(path)));
  }
  return out;
}

/**
 * Builds the CPU emulator of the CUDA driver (fake_driver.cpp + emu_runtime.cpp + every
 * kernel unit compiled by the host C++ compiler with -DLLMRT_EMU) into a folder holding
 * `libcuda.so.1`. Point LLMRT_CUDA_LIB_DIR at that folder and the CUDA backend runs on
 * the CPU: slow, but every host path and every kernel's indexing is exercised.
 * Cached by a hash of the sources and flags.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheDir, cudaIncludeDirs } from "../compile.js";
import { emuDir, hashSources, KERNEL_UNITS, kernelsDir, readKernelSources } from "../kernel-sources.js";

const CXX_FLAGS = ["-std=c++17", "-O1", "-fPIC", "-fno-strict-aliasing", "-Wno-unknown-pragmas", "-Wno-attributes"];

export function findCxx(): string | null {
  for (const c of [process.env.CXX, "g++", "c++", "clang++"].filter(Boolean) as string[]) {
    try {
      execFileSync(c, ["--version"], { stdio: "ignore" });
      return c;
    } catch {
      // next
    }
  }
  return null;
}

/** Why the emulator cannot be built here, or null if it can. */
export function emulatorUnavailable(): string | null {
  if (!findCxx()) return "no C++ compiler (g++ or clang++) on PATH";
  if (cudaIncludeDirs().length === 0) return "no CUDA headers (cuda_bf16.h) in /usr/local/cuda/include or $CUDA_HOME/include";
  return null;
}

/** Builds (or finds cached) and returns the folder holding the emulator's libcuda.so.1. */
export async function buildEmulator(parallel = 2): Promise<string> {
  const cxx = findCxx();
  const inc = cudaIncludeDirs()[0];
  if (!cxx || !inc) throw new Error(`cannot build the CUDA emulator: ${emulatorUnavailable()}`);
  const emu = emuDir();
  const sources = readKernelSources();
  for (const f of readdirSync(emu).sort()) if (/\.(cpp|hpp)$/.test(f)) sources.set(`emu/${f}`, readFileSync(join(emu, f), "utf8"));
  const key = hashSources(sources, cxx, ...CXX_FLAGS).slice(0, 16);
  const dir = join(cacheDir(), `emu-${key}`);
  const lib = join(dir, "libcuda.so.1");
  if (existsSync(lib)) return dir;
  mkdirSync(dir, { recursive: true });

  const units = [
    ...KERNEL_UNITS.map((u) => ({ src: join(kernelsDir(), `${u}.cu`), obj: join(dir, `${u}.o`), kernel: true })),
    { src: join(emu, "emu_runtime.cpp"), obj: join(dir, "emu_runtime.o"), kernel: false },
    { src: join(emu, "fake_driver.cpp"), obj: join(dir, "fake_driver.o"), kernel: false },
  ];
  const run = promisify(execFile);
  const queue = [...units];
  const worker = async () => {
    for (let u = queue.shift(); u; u = queue.shift()) {
      const lang = u.kernel ? ["-DLLMRT_EMU", "-x", "c++"] : [];
      await run(cxx, [...CXX_FLAGS, `-I${inc}`, ...lang, "-c", u.src, "-o", u.obj], { maxBuffer: 16 << 20 });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  const tmp = `${lib}.${process.pid}.tmp`;
  await run(cxx, ["-shared", "-o", tmp, ...units.map((u) => u.obj)]);
  renameSync(tmp, lib);
  return dir;
}

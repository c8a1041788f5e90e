#!/usr/bin/env node
// Compiles the CPU backend's AssemblyScript kernels (src/backends/cpu/assembly) to
// dist/src/backends/cpu/wasm/: a plain-SIMD128 build and a relaxed-SIMD build.
// Skips the work when both are newer than every source (pass --force to rebuild).
import { mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const srcDir = join(root, "src/backends/cpu/assembly");
const outDir = join(root, "dist/src/backends/cpu/wasm");
const variants = [
  { file: "kernels.simd.wasm", features: "simd,threads" },
  { file: "kernels.relaxed.wasm", features: "simd,threads,relaxed-simd" },
];

const newestSource = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
const mtime = (p) => {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -1;
  }
};
const stale = variants.filter((v) => process.argv.includes("--force") || mtime(join(outDir, v.file)) < newestSource);
if (stale.length > 0) {
  const { default: asc } = await import("assemblyscript/asc");
  mkdirSync(outDir, { recursive: true });
  for (const v of stale) {
    const { error, stderr } = await asc.main([
      join(srcDir, "index.ts"),
      "-O3", "--noAssert",
      "--runtime", "stub",
      // one shared memory, made by the host and imported by every thread's instance
      "--importMemory", "--sharedMemory", "--initialMemory", "1", "--maximumMemory", "65536",
      "--enable", v.features,
      "-o", join(outDir, `${v.file}.${process.pid}.tmp`),
    ]);
    if (error) {
      console.error(stderr.toString());
      throw error;
    }
    // atomic replace: test processes running in parallel may be loading the old file
    renameSync(join(outDir, `${v.file}.${process.pid}.tmp`), join(outDir, v.file));
  }
  console.error(`build-wasm: built ${stale.map((v) => v.file).join(", ")}`);
}

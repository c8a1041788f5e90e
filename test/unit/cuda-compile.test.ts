/**
 * Every src/backends/cuda/kernels/*.cu compiles on its own with nvcc, for sm_90 (H100,
 * H200) and sm_80 (A100): `nvcc -std=c++17 -c FILE` with both architectures' device
 * passes in one run (-gencode per arch; one host pass). Code for sm_90a only (wgmma,
 * TMA) must sit behind __CUDA_ARCH_FEAT_SM90_ALL; files that have such code are also
 * built for compute_90a. Two files at a time; a file whose sources, nvcc and flags are
 * unchanged since a passing run is not rebuilt (cache in <tmpdir>/llmrt-cuda/compile-check).
 * Without nvcc the test is skipped, except under CI=true where nvcc must be present.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { cacheDir, findNvcc } from "../../src/backends/cuda/compile.js";
import { kernelsDir, readKernelSources } from "../../src/backends/cuda/kernel-sources.js";

const run = promisify(execFile);
const BASE = ["-std=c++17", "-gencode=arch=compute_90,code=sm_90", "-gencode=arch=compute_80,code=sm_80"];
const SM90A = "-gencode=arch=compute_90a,code=sm_90a";

function flagsFor(source: string): string[] {
  return source.includes("__CUDA_ARCH_FEAT_SM90_ALL") ? [...BASE, SM90A] : BASE;
}

test("every kernel file compiles alone with nvcc for sm_90 and sm_80 (sm_90a where guarded)", { timeout: 600_000 }, async (t) => {
  const nvcc = findNvcc();
  if (!nvcc) {
    if (process.env.CI === "true") assert.fail("nvcc is not on PATH (or LLMRT_NVCC); CI machines have it");
    t.skip("nvcc not found: install the CUDA toolkit or set LLMRT_NVCC to run the kernel compile checks");
    return;
  }
  const version = (await run(nvcc, ["--version"])).stdout;
  const sources = readKernelSources();
  const headers = [...sources].filter(([n]) => n.endsWith(".cuh")).map(([n, s]) => n + s).join("\0");
  const files = readdirSync(kernelsDir()).filter((f) => f.endsWith(".cu")).sort();
  assert.ok(files.length >= 8, `expected the kernel units in ${kernelsDir()}`);
  const dir = join(cacheDir(), "compile-check");
  mkdirSync(dir, { recursive: true });

  const failures: string[] = [];
  const queue = [...files];
  const worker = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const src = sources.get(f)!;
      const flags = flagsFor(src);
      const key = createHash("sha256").update(version).update(flags.join(" ")).update(headers).update(src).digest("hex").slice(0, 20);
      const stamp = join(dir, `${f}.${key}.ok`);
      if (existsSync(stamp)) continue;
      const obj = join(dir, `${f}.${process.pid}.o`);
      try {
        await run(nvcc, [...flags, "-c", join(kernelsDir(), f), "-o", obj], { maxBuffer: 16 << 20 });
        writeFileSync(stamp, "");
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        failures.push(`${f}:\n${(err.stderr ?? err.message).split("\n").slice(0, 20).join("\n")}`);
      } finally {
        rmSync(obj, { force: true });
      }
    }
  };
  await Promise.all([worker(), worker()]);
  assert.deepEqual(failures, [], failures.join("\n\n"));
});

test("sm_90a-only instructions are guarded so plain sm_90 and sm_80 builds pass", () => {
  for (const [name, src] of readKernelSources()) {
    for (const insn of ["wgmma.", "setmaxnreg", "cp.async.bulk.tensor"]) {
      if (!src.includes(insn)) continue;
      assert.ok(src.includes("__CUDA_ARCH_FEAT_SM90_ALL"), `${name} uses ${insn} without an __CUDA_ARCH_FEAT_SM90_ALL guard`);
    }
  }
  assert.ok(readFileSync(join(kernelsDir(), "common.cuh"), "utf8").includes("__CUDA_ARCH__ >= 800"), "tensor-core code is guarded for pre-sm_80 targets");
});

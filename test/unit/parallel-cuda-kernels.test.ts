/**
 * `llmrt build --tp/--pp --target cuda` carries the compiled kernels into the sharded
 * engine dir (kernels/<unit>.<arch>.cubin, as a single-rank cuda build), and its ranks
 * load them without compiling. nvcc is a stand-in script here: it logs every call and
 * writes the ELF magic, all the emulator reads of a cubin. A sharded dir built without
 * the kernels is the control: its ranks do compile (both at once, in one process).
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { CACHE_ENV, NVCC_ENV } from "../../src/backends/cuda/compile.js";
import { engineArchs } from "../../src/backends/cuda/engine-files.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { loadAnyEngine } from "../../src/parallel/load-engine.js";
import { makeStep } from "../../bench/device/compare.js";
import { runBuild } from "../helpers/cli.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`sharded cuda kernel tests: ${missing}`);

/** An nvcc that logs its arguments and writes "\x7fELF" to its -o file. */
function fakeNvcc(dir: string, log: string): string {
  const path = join(dir, "nvcc");
  writeFileSync(
    path,
    `#!/bin/sh
echo "$*" >> '${log}'
if [ "$1" = "--version" ]; then echo "Cuda compilation tools, release 0.0 (test stand-in)"; exit 0; fi
out=""
while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; fi; shift; done
printf '\\177ELF' > "$out"
`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** Loads the engine (every rank binds: its kernels are loaded then) and runs one step. */
async function loadAndStep(dir: string): Promise<void> {
  const engine = await loadAnyEngine(dir, { maxSeqs: 2, maxBatchTokens: 16 });
  try {
    const logits = engine.forward(makeStep([{ tokens: [1, 20, 30], table: [0], done: 0 }], [3], 16));
    assert.equal(logits.length, engine.config.vocabSize);
    assert.ok(logits.every(Number.isFinite));
  } finally {
    engine.close();
  }
}

describe("sharded cuda engine dirs carry their kernels", { skip: missing ?? false }, () => {
  let tmp = "";
  let log = "";
  const calls = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : []);
  const saved = { nvcc: process.env[NVCC_ENV], cache: process.env[CACHE_ENV] };
  before(async () => {
    process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
    tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-cuda-kernels-"));
    log = join(tmp, "nvcc.log");
    process.env[NVCC_ENV] = fakeNvcc(tmp, log);
    process.env[CACHE_ENV] = join(tmp, "cache"); // empty: a compile cannot hide behind a cached cubin
  });
  after(() => {
    for (const [k, v] of [[NVCC_ENV, saved.nvcc], [CACHE_ENV, saved.cache]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  test("llmrt build --tp 2 --pp 2 --target cuda writes kernels/*.sm_90.cubin; its 4 ranks load them without compiling", async () => {
    const out = join(tmp, "tp2pp2");
    await runBuild("--model", "synthetic:tiny", "--target", "cuda", "--tp", "2", "--pp", "2", "--max-seqs", "2", "--max-batch-tokens", "16", "--max-seq-len", "64", "-o", out);
    assert.ok(calls().some((c) => c.includes("-arch=sm_90")), "the build compiled the kernels");
    assert.deepEqual(engineArchs(out), ["sm_90"]);
    rmSync(log, { force: true });
    await loadAndStep(out);
    assert.deepEqual(calls(), [], "a rank compiled kernels at load");
  });

  test("control: ranks of a sharded dir without kernels compile them at load (and two at once do not collide)", async () => {
    const out = join(tmp, "bare");
    const ckpt = syntheticCheckpoint(syntheticConfig(SYNTHETIC_PRESETS.tiny), 1);
    buildShardedEngineDir(ckpt, out, { tp: 2, pp: 1 }, { target: "cuda", maxSeqs: 2, maxBatchTokens: 16, maxSeqLen: 64 });
    assert.deepEqual(engineArchs(out), []);
    rmSync(log, { force: true });
    rmSync(process.env[CACHE_ENV]!, { recursive: true, force: true });
    await loadAndStep(out);
    assert.ok(calls().some((c) => c.includes("-arch=sm_90")), "the ranks compiled the kernels");
  });
});

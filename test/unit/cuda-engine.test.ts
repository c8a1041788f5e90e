/**
 * Engines for the cuda target: built without a GPU (the engine dir carries kernels/ for
 * its --gpu-arch), loaded through the target on the CPU emulator, and stories260K's
 * greedy output equal to the llama2.c / llama.cpp goldens, through Engine and LLM.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readStoriesGoldens, teacherForcedGoldens } from "../../bench/device/golden.js";
import { LLM } from "../../src/api/llm.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { cubinFile, engineArchs, readEngineCubins } from "../../src/backends/cuda/engine-files.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { SHARED_DIR, fixture } from "../helpers/fixtures.js";

const ELF = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);
const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`cuda engine tests: ${missing}`);

describe("engines for the cuda target", () => {
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "llmrt-cuda-engine-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a build carries its kernels per architecture; the manifest names the target and arch", (t) => {
    const model = fixture(t, "models/stories260K/stories260K.bin");
    if (!model) return;
    const ckpt = openCheckpoint(model);
    // the cubins' bytes come from nvcc in `llmrt build`; the emulator needs only their ELF magic
    const files = new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]));
    try {
      buildEngineDir(ckpt, dir, { target: "cuda", maxBatchTokens: 512, maxLogitRows: 512, maxSeqs: 4, maxSeqLen: 512 }, { files });
    } finally {
      ckpt.close();
    }
    const m = readManifest(dir);
    assert.equal(m.target, "cuda");
    assert.equal(m.build.gpuArch, "sm_90");
    assert.deepEqual(engineArchs(dir), ["sm_90"]);
    assert.equal(readEngineCubins(dir, "sm_80"), null);
    assert.equal(readEngineCubins(dir, "sm_90")?.size, KERNEL_UNITS.length);
  });

  describe("on the CPU emulator", { skip: missing ?? false }, () => {
    before(async () => {
      process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
    });

    test("stories260K: argmax at every golden position is llama2.c's token, top-5 logits within 1e-4", (t) => {
      if (!fixture(t, "golden/stories260K.llama2c.once_upon_a_time.json") || !fixture(t, "models/stories260K/stories260K.bin")) return;
      const engine = Engine.load(dir, { blockSize: 16 });
      const r = teacherForcedGoldens(engine, readStoriesGoldens(SHARED_DIR));
      t.diagnostic(`${r.positions} positions, worst relative top-5 logit error ${r.worstLogit.toExponential(2)}`);
      assert.deepEqual(r.mismatches, []);
      assert.ok(r.worstLogit < 1e-4);
    });

    test("--dtype fp8 (cuda only): bf16 on disk, e4m3 linear weights on the GPU, close to the goldens; --kv-dtype fp8 too", (t) => {
      const model = fixture(t, "models/stories260K/stories260K.bin");
      if (!model || !fixture(t, "golden/stories260K.llama2c.once_upon_a_time.json")) return;
      const fp8Dir = join(dir, "..", `${dir.split("/").pop()}-fp8`);
      const ckpt = openCheckpoint(model);
      const files = new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]));
      try {
        assert.throws(() => buildEngineDir(ckpt, join(fp8Dir, "x"), { target: "reference", dtype: "fp8", maxSeqs: 1 }), /fp8 weights run on the cuda target only/);
        buildEngineDir(ckpt, fp8Dir, { target: "cuda", dtype: "fp8", maxBatchTokens: 512, maxLogitRows: 512, maxSeqs: 4, maxSeqLen: 512 }, { files });
      } finally {
        ckpt.close();
      }
      try {
        assert.equal(readManifest(fp8Dir).build.dtype, "fp8");
        for (const kvDtype of [undefined, "fp8"] as const) {
          const engine = Engine.load(fp8Dir, { blockSize: 16, kvDtype });
          const bound = (engine as unknown as { bound: { deviceWeights: { all(): { role: string; fmt: string }[] } } }).bound;
          assert.ok(bound.deviceWeights.all().filter((w) => w.role === "linear").every((w) => w.fmt === "fp8"), "linear weights are fp8 on the device");
          const r = teacherForcedGoldens(engine, readStoriesGoldens(SHARED_DIR));
          t.diagnostic(`kv ${kvDtype ?? "bf16"}: ${r.mismatches.length} of ${r.positions} argmax differ from the golden, worst top-5 logit error ${r.worstLogit.toFixed(3)}`);
          assert.ok(r.mismatches.length <= 0.1 * r.positions, `${r.mismatches.length} of ${r.positions} positions differ`);
          engine.close();
        }
        const again = openCheckpoint(model);
        try {
          assert.throws(() => Engine.fromCheckpoint(again, { maxSeqLen: 64, kvDtype: "fp8", backend: new ReferenceBackend() }), /fp8 KV cache runs on the cuda target only/);
        } finally {
          again.close();
        }
      } finally {
        rmSync(fp8Dir, { recursive: true, force: true });
      }
    });

    test("stories260K through LLM (in-flight batching, CUDA-graph decode): greedy tokens equal the golden's", async (t) => {
      if (!fixture(t, "golden/stories260K.llama2c.once_upon_a_time.json")) return;
      const [g, h] = readStoriesGoldens(SHARED_DIR, ["once_upon_a_time", "lily_and_ben"]);
      const llm = await LLM.load(dir, { maxSeqs: 2, maxSeqLen: 512 });
      try {
        const n = 24; // the emulator runs ~20 steps a second here
        const out = await llm.generate([{ promptTokenIds: g.prompt_token_ids }, { promptTokenIds: h.prompt_token_ids }], { temperature: 0, maxTokens: n, ignoreEos: true });
        assert.deepEqual(out[0].outputs[0].tokenIds, g.output_token_ids.slice(0, n));
        assert.deepEqual(out[1].outputs[0].tokenIds, h.output_token_ids.slice(0, n));
      } finally {
        llm.close();
      }
    });
  });
});

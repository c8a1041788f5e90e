/**
 * Sharded engines for the cuda target on the CPU emulator of libcuda: every rank thread
 * binds its graph to the one fake device, and the collectives run host-staged through
 * shared memory (backends/cuda/host-collectives.ts). fp32 engines, so the tokens equal
 * the single-rank cuda engine's and the reference's exactly. A rank that throws fails
 * the request with its RankError.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { LLM } from "../../src/api/llm.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { cubinFile } from "../../src/backends/cuda/engine-files.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { buildEngineDir } from "../../src/engine/build.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { RankError } from "../../src/parallel/rank-group.js";
import { MICRO_BATCHES_ENV, ShardedEngine } from "../../src/parallel/sharded-engine.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`sharded cuda engine tests: ${missing}`);

// the emulator needs only the cubins' ELF magic
const ELF = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);
const files = () => new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]));
const BUILD: Partial<BuildOptions> = { dtype: "fp32", maxSeqs: 3, maxBatchTokens: 12, maxLogitRows: 12, maxSeqLen: 96 };
const PROMPTS = [[1, 40, 41, 42, 50, 60, 70, 5, 9, 33, 34, 35, 36, 37], [1, 80, 81], [1, 20, 21, 22, 23, 24, 25, 26]].map((p) => ({ promptTokenIds: p }));

async function greedy(dir: string): Promise<{ tokens: number[][]; engine: string }> {
  process.env[MICRO_BATCHES_ENV] = "2"; // "auto" would not cut steps this small on the cuda target: cut them, cuts inside sequences too
  let llm: LLM;
  try {
    llm = await LLM.load(dir, { maxSeqs: 3, maxBatchTokens: 12 });
  } finally {
    delete process.env[MICRO_BATCHES_ENV];
  }
  try {
    const outs = await llm.generate(PROMPTS, { temperature: 0, maxTokens: 12, ignoreEos: true });
    const e = llm.core.engine;
    return { tokens: outs.map((o) => o.outputs[0].tokenIds), engine: e instanceof ShardedEngine ? `sharded ${e.parallel.tp}x${e.parallel.pp}` : "single" };
  } finally {
    llm.close();
    if (llm.core.engine instanceof ShardedEngine) llm.core.engine.close();
  }
}

describe("sharded engines for the cuda target, on the CPU emulator", { skip: missing ?? false }, () => {
  let tmp = "";
  let ckpt: Checkpoint;
  const dir = (name: string) => join(tmp, name);
  before(async () => {
    process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
    tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-cuda-"));
    // GQA 8-4 and an untied head: every collective (vocab-parallel embedding, all_reduce, all_gather of the logits, send/recv)
    ckpt = syntheticCheckpoint(syntheticConfig({ ...SYNTHETIC_PRESETS.tiny, maxPositionEmbeddings: 128 }), 7);
    buildEngineDir(ckpt, dir("ref"), BUILD);
    buildEngineDir(ckpt, dir("cuda"), { ...BUILD, target: "cuda" }, { files: files() });
    for (const [tp, pp] of [[2, 1], [1, 2]]) buildShardedEngineDir(ckpt, dir(`tp${tp}pp${pp}`), { tp, pp }, { ...BUILD, target: "cuda" }, { files: files() });
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test("--tp 2 and --pp 2 give the single-rank cuda engine's greedy tokens, and the reference's", async () => {
    const ref = await greedy(dir("ref"));
    const single = await greedy(dir("cuda"));
    assert.deepEqual(single.tokens, ref.tokens, "single-rank cuda = reference");
    for (const [tp, pp] of [[2, 1], [1, 2]]) {
      const got = await greedy(dir(`tp${tp}pp${pp}`));
      assert.equal(got.engine, `sharded ${tp}x${pp}`);
      assert.deepEqual(got.tokens, single.tokens, `cuda tp ${tp} x pp ${pp}`);
    }
  });

  test("a rank that throws fails the request with its RankError, later requests at once", async () => {
    process.env.LLMRT_RANK_FAULT = "1:3:throw";
    let llm: LLM;
    try {
      llm = await LLM.load(dir("tp2pp1"), { maxSeqs: 3 });
    } finally {
      delete process.env.LLMRT_RANK_FAULT;
    }
    const message = /rank 1 \(stage 0, tp rank 1\) failed: Error: injected fault at step 3/;
    try {
      await assert.rejects(llm.generate(PROMPTS, { temperature: 0, maxTokens: 8, ignoreEos: true }), (e: unknown) => e instanceof RankError && message.test(e.message));
      await assert.rejects(llm.generate("again", { maxTokens: 4 }), (e: unknown) => e instanceof RankError && message.test(e.message));
    } finally {
      llm.close();
      (llm.core.engine as ShardedEngine).close();
    }
  });
});

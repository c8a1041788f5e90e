/**
 * Sharded engines on the cpu target fail as the reference ones do (parallel-failure.test.ts):
 * a rank that throws or exits while its peers wait in a collective (each rank has its own
 * CPU worker pool) fails the requests with the RankError naming it, later ones at once,
 * and hangs nothing (also with two steps in flight); close() ends every rank thread and its pool.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { PIPELINE_DEPTH_ENV, ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { assertFailsWithRankError } from "../helpers/rank-failure.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-cpu-failure-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function engineDir(tp: number, pp: number): string {
  const dir = join(tmp, `tp${tp}pp${pp}`);
  buildShardedEngineDir(syntheticCheckpoint(syntheticConfig(SYNTHETIC_PRESETS.tiny)), dir, { tp, pp }, { maxSeqs: 4, maxBatchTokens: 32, maxLogitRows: 32, maxSeqLen: 128, target: "cpu" });
  return dir;
}

/** Loads with the fault hook and 4 threads (2 a rank at tp 2: each rank runs a pool worker). */
async function load(dir: string, fault?: string, depth?: string): Promise<LLM> {
  if (fault) process.env.LLMRT_RANK_FAULT = fault;
  if (depth) process.env[PIPELINE_DEPTH_ENV] = depth;
  process.env.LLMRT_THREADS = "4";
  try {
    return await LLM.load(dir, { maxSeqs: 4 });
  } finally {
    delete process.env.LLMRT_RANK_FAULT;
    delete process.env[PIPELINE_DEPTH_ENV];
    delete process.env.LLMRT_THREADS;
  }
}

const CASES: [string, number, number, string, RegExp, string?][] = [
  ["tp 2, rank 1 throws in its 3rd step", 2, 1, "1:3:throw", /rank 1 \(stage 0, tp rank 1\) failed: Error: injected fault at step 3/],
  ["tp 2 x pp 2, rank 2 (second stage) throws in its 2nd step", 2, 2, "2:2:throw", /rank 2 \(stage 1, tp rank 0\) failed: Error: injected fault at step 2/],
  ["pp 2, the last stage exits while the first sends", 1, 2, "1:2:exit", /rank 1 exited \(code 3\)/],
  ["pp 2 with two steps in flight, the last stage throws in its 3rd step", 1, 2, "1:3:throw", /rank 1 \(stage 1, tp rank 0\) failed: Error: injected fault at step 3/, "2"],
];

for (const [name, tp, pp, fault, message, depth] of CASES) {
  test(`cpu target: ${name}: the requests fail with the rank's error, later ones at once, nothing hangs`, async () => {
    const llm = await load(engineDir(tp, pp), fault, depth);
    const engine = llm.core.engine as ShardedEngine;
    try {
      await assertFailsWithRankError(llm, message);
    } finally {
      llm.close();
    }
    const exited = await Promise.race([engine.stopped.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
    assert.ok(exited, "rank threads still running 10 s after close()");
  });
}

test("cpu target: a healthy tp 2 x pp 2 engine generates, and close() stops its ranks and their pools", async () => {
  const llm = await load(engineDir(2, 2));
  const engine = llm.core.engine as ShardedEngine;
  const out = await llm.generate("Once upon a time", { temperature: 0, maxTokens: 4, ignoreEos: true });
  assert.equal(out[0].outputs[0].tokenIds.length, 4);
  assert.equal(llm.failure, null);
  llm.close();
  const exited = await Promise.race([engine.stopped.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
  assert.ok(exited, "rank threads still running 10 s after close()");
});

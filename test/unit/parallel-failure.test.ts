/**
 * A rank that throws or dies mid-generation fails the requests in flight with an error
 * naming the rank, fails later requests at once with the same error, and hangs nothing;
 * through a server, the HTTP request fails with that message and the server stays up.
 * Faults are injected with LLMRT_RANK_FAULT=RANK:STEP:throw|exit (read when ranks start).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { RankError } from "../../src/parallel/rank-group.js";
import { ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { postJson, startTestServer } from "../server/helpers.js";
import { assertFailsWithRankError } from "../helpers/rank-failure.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-failure-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function engineDir(tp: number, pp: number): string {
  const dir = join(tmp, `tp${tp}pp${pp}`);
  buildShardedEngineDir(syntheticCheckpoint(syntheticConfig(SYNTHETIC_PRESETS.tiny)), dir, { tp, pp }, { maxSeqs: 4, maxBatchTokens: 32, maxLogitRows: 32, maxSeqLen: 128 });
  return dir;
}

async function withFault<T>(fault: string, run: () => Promise<T>): Promise<T> {
  process.env.LLMRT_RANK_FAULT = fault;
  try {
    return await run();
  } finally {
    delete process.env.LLMRT_RANK_FAULT;
  }
}

const CASES: [string, number, number, string, RegExp][] = [
  ["tp 2, rank 1 throws in its 3rd step", 2, 1, "1:3:throw", /rank 1 \(stage 0, tp rank 1\) failed: Error: injected fault at step 3/],
  ["tp 2, rank 0 exits in its 2nd step", 2, 1, "0:2:exit", /rank 0 exited \(code 3\)/],
  ["pp 2, the last stage exits while the first sends", 1, 2, "1:2:exit", /rank 1 exited \(code 3\)/],
];

for (const [name, tp, pp, fault, message] of CASES) {
  test(`LLM API: ${name}: the requests fail with the rank's error, later ones at once, nothing hangs`, async () => {
    const dir = engineDir(tp, pp);
    const llm = await withFault(fault, () => LLM.load(dir, { maxSeqs: 4 }));
    try {
      await assertFailsWithRankError(llm, message);
      assert.ok(llm.failure instanceof RankError && message.test(llm.failure.message), "LLM.failure names the rank");
    } finally {
      llm.close();
    }
  });
}

test("LLM.close() stops the rank threads", async () => {
  const llm = await LLM.load(engineDir(2, 2), { maxSeqs: 4 });
  const engine = llm.core.engine as ShardedEngine;
  const out = await llm.generate("Once upon a time", { temperature: 0, maxTokens: 4, ignoreEos: true });
  assert.equal(out[0].outputs[0].tokenIds.length, 4);
  assert.equal(llm.failure, null);
  llm.close();
  // every rank thread and the supervisor exit (the supervisor ends them first); never hangs
  const exited = await Promise.race([engine.stopped.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref())]);
  assert.ok(exited, "rank threads still running 10 s after close()");
  await assert.rejects(llm.generate("again", { maxTokens: 2 }), /closed/);
});

test("server: a rank that throws fails the HTTP request with its message; the server stays up and answers", async () => {
  const dir = engineDir(2, 1);
  const server = await withFault("1:2:throw", () => startTestServer({ model: dir, maxSeqs: 4 }));
  try {
    const r = await postJson(`${server.url}/v1/completions`, { model: dir, prompt: "Once upon a time", max_tokens: 16, temperature: 0 });
    assert.ok(r.status >= 500, `status ${r.status}`);
    assert.match(JSON.stringify(r.body), /rank 1 \(stage 0, tp rank 1\) failed/);
    const again = await postJson(`${server.url}/v1/completions`, { model: dir, prompt: "x", max_tokens: 4 });
    assert.match(JSON.stringify(again.body), /rank 1/);
    const models = await fetch(`${server.url}/v1/models`);
    assert.equal(models.status, 200); // still serving
    // and says it is broken, naming the rank, so an orchestrator's liveness probe restarts it
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 503);
    const body = (await health.json()) as { status: string; error: string };
    assert.equal(body.status, "failed");
    assert.match(body.error, /rank 1 \(stage 0, tp rank 1\) failed/);
  } finally {
    await server.close(1000);
  }
});

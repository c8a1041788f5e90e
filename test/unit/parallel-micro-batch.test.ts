/**
 * How many micro-batches a pipeline step is cut into: "auto" (the default) cuts a step
 * only into pieces of at least the target's MIN_MICRO_BATCH_TOKENS, at most one a stage;
 * a number cuts every step of 2+ tokens into that many. Counted on a --pp 2 cpu engine by
 * its stage 0's sends (one a piece); the stage times add up to the steps' wall time.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeStep } from "../../bench/device/compare.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { microBatchCount } from "../../src/parallel/micro-batch.js";
import { MIN_MICRO_BATCH_TOKENS, ShardedEngine, type ShardedLoadOptions } from "../../src/parallel/sharded-engine.js";

test("microBatchCount: at most `most` pieces of at least `minTokens`, never none", () => {
  assert.equal(microBatchCount(1, 2, 16), 1);
  assert.equal(microBatchCount(16, 2, 16), 1); // 16 decode rows: two pieces of 8 would be under the cpu minimum
  assert.equal(microBatchCount(31, 2, 16), 1);
  assert.equal(microBatchCount(32, 2, 16), 2);
  assert.equal(microBatchCount(512, 2, 16), 2);
  assert.equal(microBatchCount(512, 4, 256), 2);
  assert.equal(microBatchCount(3, 4, 1), 3);
  assert.equal(microBatchCount(5, 3, 0), 3);
});

describe("micro-batches of a --pp 2 cpu engine", () => {
  let tmp = "";
  const dir = () => join(tmp, "pp2");
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-micro-"));
    buildShardedEngineDir(syntheticCheckpoint(syntheticConfig(SYNTHETIC_PRESETS.tiny), 3), dir(), { tp: 1, pp: 2 }, { target: "cpu", maxSeqs: 4, maxBatchTokens: 64, maxLogitRows: 8, maxSeqLen: 128 });
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** Pieces stage 0 sent for each step, given as tokens per sequence (a prefill of fresh sequences). */
  async function pieces(opts: ShardedLoadOptions, steps: number[][]): Promise<{ pieces: number[]; engine: ShardedEngine }> {
    process.env.LLMRT_THREADS = "2";
    const engine = await ShardedEngine.start(dir(), { maxSeqs: 4, maxBatchTokens: 64, ...opts });
    delete process.env.LLMRT_THREADS;
    const out: number[] = [];
    let block = 0;
    for (const take of steps) {
      const seqs = take.map((n) => ({ tokens: Array.from({ length: n }, (_, k) => 1 + ((k * 7) % 90)), table: [block++, block++, block++, block++], done: 0 }));
      const sent = engine.rankStats()[0].calls;
      engine.forward(makeStep(seqs, take, 16));
      out.push(engine.rankStats()[0].calls - sent);
    }
    return { pieces: out, engine };
  }

  test("auto: steps under 2 x 16 tokens run whole, larger ones in one piece a stage; a number cuts every step", async () => {
    assert.equal(MIN_MICRO_BATCH_TOKENS.cpu, 16);
    const steps = [[1], [3, 3, 2], [20, 11], [40, 24]]; // 1, 8, 31 and 64 tokens
    const auto = await pieces({}, steps);
    try {
      assert.deepEqual(auto.pieces, [1, 1, 1, 2]);
      // what the stats say: every step's wall time is each stage's busy plus idle time
      const t = auto.engine.stageTimes();
      assert.equal(t.steps, steps.length);
      assert.equal(t.stages.length, 2);
      for (const s of t.stages) {
        assert.ok(s.busyUs > 0 && s.idleUs >= 0, JSON.stringify(s));
        assert.ok(Math.abs(s.busyUs + s.idleUs - t.wallUs) < 1, JSON.stringify(t));
      }
    } finally {
      auto.engine.close();
    }
    const two = await pieces({ microBatches: 2 }, steps);
    try {
      assert.deepEqual(two.pieces, [1, 2, 2, 2]); // one token cannot be cut
    } finally {
      two.engine.close();
    }
  });
});

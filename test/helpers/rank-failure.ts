/** What every rank-failure test checks of an LLM whose sharded engine has a faulty rank. */
import assert from "node:assert/strict";
import type { LLM } from "../../src/api/llm.js";
import { RankError } from "../../src/parallel/rank-group.js";
import type { ShardedEngine } from "../../src/parallel/sharded-engine.js";

/**
 * The requests in flight fail with the rank's error (matching `message`), a later one
 * fails at once with it, within 10 s; the engine reports the failure and nothing is left scheduled.
 */
export async function assertFailsWithRankError(llm: LLM, message: RegExp): Promise<void> {
  const t0 = performance.now();
  const isRankError = (e: unknown) => e instanceof RankError && message.test(e.message);
  await assert.rejects(llm.generate(["Once upon a time", "The cat"], { temperature: 0, maxTokens: 20, ignoreEos: true }), isRankError);
  await assert.rejects(llm.generate("again", { maxTokens: 4 }), isRankError);
  assert.ok(performance.now() - t0 < 10_000, "failed promptly");
  assert.ok((llm.core.engine as ShardedEngine).failure() instanceof RankError);
  assert.equal(llm.stats().running + llm.stats().waiting, 0); // nothing left scheduled
}

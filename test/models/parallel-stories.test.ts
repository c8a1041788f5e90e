/**
 * stories260K (8 heads, 4 KV heads, 5 layers), FP32: engines built with --tp 2, --pp 2
 * and --tp 2 --pp 2 give the same greedy tokens as the single-rank engine, through
 * LLM.load (which starts the ranks) with several prompts in flight and chunked prefill.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { fixture } from "../helpers/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-stories-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const PROMPTS = ["Once upon a time", "The cat sat on the mat and", "Lily and Tom went to the park. They saw a big", "One day"];
const BUILD = { maxSeqs: 4, maxBatchTokens: 16, maxLogitRows: 16 }; // 16-token steps: prompts prefill in chunks beside decodes

async function greedy(dir: string): Promise<number[][]> {
  const llm = await LLM.load(dir, { maxSeqs: 4, maxBatchTokens: 16 });
  try {
    const outs = await llm.generate(PROMPTS, { temperature: 0, maxTokens: 16, ignoreEos: true });
    return outs.map((o) => o.outputs[0].tokenIds);
  } finally {
    llm.close();
    if (llm.core.engine instanceof ShardedEngine) llm.core.engine.close();
  }
}

test("stories260K: --tp 2, --pp 2 and --tp 2 --pp 2 engines give the single-rank engine's greedy tokens", async (t) => {
  const model = fixture(t, "models/stories260K");
  if (!model) return;
  const ckpt = openCheckpoint(model);
  try {
    buildEngineDir(ckpt, join(tmp, "single"), BUILD);
    for (const [tp, pp] of [[2, 1], [1, 2], [2, 2]]) buildShardedEngineDir(ckpt, join(tmp, `tp${tp}pp${pp}`), { tp, pp }, BUILD);
  } finally {
    ckpt.close();
  }
  const want = await greedy(join(tmp, "single"));
  for (const name of ["tp2pp1", "tp1pp2", "tp2pp2"]) {
    const got = await greedy(join(tmp, name));
    assert.deepEqual(got, want, name);
  }
  t.diagnostic(`${PROMPTS.length} prompts x 16 tokens equal on tp 2, pp 2 and tp 2 x pp 2`);
});

/**
 * Speculative decoding inside in-flight batching must not change greedy output:
 * n-gram drafting, stories260K as its own draft, and a random-weight draft all
 * reproduce the llama2.c goldens token for token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../src/engine/engine.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { loadTokenizer } from "../../src/tokenizer/load.js";
import { EngineCore } from "../../src/runtime/engine-core.js";
import { normalizeSamplingParams } from "../../src/runtime/sampling-params.js";
import type { SpeculativeConfig } from "../../src/runtime/speculative/config.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../helpers/golden.js";

async function runAll(model: string, speculative?: SpeculativeConfig, draftEngine?: Engine) {
  const ckpt = openCheckpoint(model);
  const tokenizer = await loadTokenizer(ckpt.tokenizer);
  const engine = Engine.fromCheckpoint(ckpt, { maxSeqLen: 512, maxSeqs: 8 });
  ckpt.close();
  return { core: new EngineCore(engine, tokenizer, { maxSeqs: 8, maxBatchTokens: 256, speculative, draftEngine }), tokenizer };
}

for (const [name, spec] of [
  ["n-gram k=4 n=3", { method: "ngram", k: 4, n: 3 }],
  ["draft = the model itself, k=4", { method: "draft", model: "self", k: 4 }],
  ["random-weight draft, k=3", { method: "draft", model: "random", k: 3 }],
] as const) {
  test(`speculative greedy (${name}) equals the goldens token for token, all prompts in flight together`, async (t) => {
    const paths = fixtures(t, "models/stories260K", ...STORIES_PROMPTS.map((p) => `golden/stories260K.llama2c.${p}.json`));
    if (!paths) return;
    let draftEngine: Engine | undefined;
    if (spec.method === "draft") {
      const ck = spec.model === "self" ? openCheckpoint(paths[0]) : syntheticCheckpoint(syntheticConfig({ vocabSize: 512, numLayers: 2 }), 3);
      draftEngine = Engine.fromCheckpoint(ck, { maxSeqLen: 512, maxSeqs: 8 });
      ck.close();
    }
    const { core, tokenizer } = await runAll(paths[0], spec, draftEngine);
    const goldens = paths.slice(1).map(readGolden);
    goldens.forEach((g, i) => core.addRequest(`g${i}`, tokenizer.encode(g.prompt), normalizeSamplingParams({ temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true })));
    const out = goldens.map(() => [] as number[]);
    while (core.hasWork) for (const u of core.step()) out[Number(u.id.slice(1))].push(...u.newTokenIds);
    goldens.forEach((g, i) => assert.deepEqual(out[i], g.output_token_ids, STORIES_PROMPTS[i]));
    const s = core.stats();
    t.diagnostic(`acceptance ${(s.specAcceptanceRate * 100).toFixed(1)}% of ${s.specDraftTokens} drafts, ${s.specMeanAcceptedLength.toFixed(2)} tokens per verification, ${s.steps} steps`);
    assert.ok(s.specDraftTokens > 0);
    if (spec.method === "draft" && spec.model === "self") assert.equal(s.specAcceptanceRate, 1);
    assert.equal(core.pool.numFree, core.pool.numBlocks);
  });
}

/**
 * stories260K against the independent references in ../shared/golden (llama2.c run.c
 * and llama.cpp): greedy tokens exactly, from all three formats of the model, and the
 * top-5 logits / probabilities at every generated position.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LLM } from "../../src/api/llm.js";
import { Engine } from "../../src/engine/engine.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, logSoftmax, readGolden } from "../helpers/golden.js";

const FORMATS: Record<string, { model: string; tokenizer?: string }> = {
  "llama2.c .bin": { model: "models/stories260K" },
  GGUF: { model: "models/stories260K-gguf/stories260K.gguf" },
  "HF safetensors": { model: "models/derived/stories260K-hf", tokenizer: "models/stories260K/tok512.bin" },
};

for (const [format, spec] of Object.entries(FORMATS)) {
  test(`stories260K ${format}: greedy output equals llama2.c and llama.cpp token for token`, async (t) => {
    const paths = fixtures(t, spec.model, ...(spec.tokenizer ? [spec.tokenizer] : []));
    if (!paths) return;
    const goldens = fixtures(t, ...STORIES_PROMPTS.flatMap((p) => [`golden/stories260K.llama2c.${p}.json`, `golden/stories260K.llamacpp.${p}.json`]));
    if (!goldens) return;
    const llm = await LLM.load(paths[0], { tokenizer: paths[1], maxSeqs: 8 });
    try {
      const pairs = STORIES_PROMPTS.map((_, i) => [readGolden(goldens[2 * i]), readGolden(goldens[2 * i + 1])]);
      // all prompts in flight together: batching must not change greedy output
      const results = await Promise.all(
        pairs.map(([g]) => llm.generate(g.prompt, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true }).then((r) => r[0])),
      );
      pairs.forEach(([c, cpp], i) => {
        const r = results[i];
        assert.deepEqual(r.promptTokenIds, c.prompt_token_ids, `${STORIES_PROMPTS[i]}: prompt ids`);
        assert.deepEqual(cpp.prompt_token_ids, c.prompt_token_ids);
        assert.deepEqual(r.outputs[0].tokenIds, c.output_token_ids, `${STORIES_PROMPTS[i]}: llama2.c tokens`);
        assert.deepEqual(r.outputs[0].tokenIds, cpp.output_token_ids, `${STORIES_PROMPTS[i]}: llama.cpp tokens`);
        assert.equal(r.outputs[0].text, c.output_text, `${STORIES_PROMPTS[i]}: text`);
      });
    } finally {
      llm.close();
    }
  });

  test(`stories260K ${format}: top-5 logits within 1e-4 of llama2.c, probabilities of llama.cpp`, (t) => {
    const paths = fixtures(t, spec.model);
    const goldens = fixtures(t, ...STORIES_PROMPTS.flatMap((p) => [`golden/stories260K.llama2c.${p}.json`, `golden/stories260K.llamacpp.${p}.json`]));
    if (!paths || !goldens) return;
    const ckpt = openCheckpoint(paths[0]);
    const engine = Engine.fromCheckpoint(ckpt, { maxSeqLen: 512, blockSize: 16 });
    ckpt.close();
    let worstLogit = 0;
    let worstProb = 0;
    for (let i = 0; i < STORIES_PROMPTS.length; i++) {
      const [c, cpp] = [readGolden(goldens[2 * i]), readGolden(goldens[2 * i + 1])];
      // teacher forcing: feed prompt + golden output, read the logits at every generating position
      const tokens = [...c.prompt_token_ids, ...c.output_token_ids.slice(0, -1)];
      const seq = new Sequence(0, tokens);
      const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize);
      pool.reserve(seq, tokens.length);
      const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize);
      const first = c.prompt_token_ids.length - 1;
      step.logitRows = Int32Array.from({ length: c.output_token_ids.length }, (_, k) => first + k);
      const logits = engine.forward(step);
      const V = engine.config.vocabSize;
      for (let k = 0; k < c.output_token_ids.length; k++) {
        const row = logits.subarray(k * V, (k + 1) * V);
        for (const [id, want] of c.top_logits![k]) {
          const err = Math.abs(row[id] - want) / Math.max(1, Math.abs(want));
          worstLogit = Math.max(worstLogit, err);
        }
        const lp = logSoftmax(row);
        for (const [id, p] of cpp.top_probs![k]) worstProb = Math.max(worstProb, Math.abs(Math.exp(lp[id]) - p) / p);
      }
    }
    t.diagnostic(`worst relative logit error vs llama2.c ${worstLogit.toExponential(2)}; worst relative probability error vs llama.cpp ${worstProb.toExponential(2)}`);
    assert.ok(worstLogit < 1e-4, `logit error ${worstLogit}`);
    assert.ok(worstProb < 1e-3, `probability error ${worstProb}`);
  });
}

test("llama-2-tiny-random GGUF (F16, 32000 vocab): greedy output equals llama.cpp", async (t) => {
  const model = fixture(t, "models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf");
  const goldens = fixtures(t, "golden/llama-2-tiny-random.llamacpp.hello_world.json", "golden/llama-2-tiny-random.llamacpp.once_upon_a_time.json");
  if (!model || !goldens) return;
  const llm = await LLM.load(model, { maxSeqLen: 512 });
  try {
    for (const g of goldens.map(readGolden)) {
      const [r] = await llm.generate(g.prompt, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true });
      assert.deepEqual(r.promptTokenIds, g.prompt_token_ids);
      assert.deepEqual(r.outputs[0].tokenIds, g.output_token_ids);
    }
  } finally {
    llm.close();
  }
});

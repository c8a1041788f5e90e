/**
 * The CPU target reproduces the independent references (../shared/golden): stories260K
 * greedy tokens from llama2.c and llama.cpp token for token through LLM.load with target
 * "cpu" (engine built and loaded from its dir, prompts batched in flight, 2 threads),
 * top-5 logits by teacher forcing, and the F16 llama-2-tiny-random GGUF (fp16 weights).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../helpers/golden.js";

const engineCache = mkdtempSync(join(tmpdir(), "llmrt-cpu-golden-"));
after(() => rmSync(engineCache, { recursive: true, force: true }));
const goldenFiles = STORIES_PROMPTS.flatMap((p) => [`golden/stories260K.llama2c.${p}.json`, `golden/stories260K.llamacpp.${p}.json`]);

test("stories260K on target cpu: greedy output equals llama2.c and llama.cpp token for token", async (t) => {
  const model = fixture(t, "models/stories260K");
  const goldens = fixtures(t, ...goldenFiles);
  if (!model || !goldens) return;
  const llm = await LLM.load(model, { build: { target: "cpu" }, engineCache, maxSeqs: 8 });
  try {
    const pairs = STORIES_PROMPTS.map((_, i) => [readGolden(goldens[2 * i]), readGolden(goldens[2 * i + 1])]);
    const results = await Promise.all(pairs.map(([g]) => llm.generate(g.prompt, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true }).then((r) => r[0])));
    pairs.forEach(([c, cpp], i) => {
      assert.deepEqual(results[i].outputs[0].tokenIds, c.output_token_ids, `${STORIES_PROMPTS[i]}: llama2.c tokens`);
      assert.deepEqual(results[i].outputs[0].tokenIds, cpp.output_token_ids, `${STORIES_PROMPTS[i]}: llama.cpp tokens`);
    });
  } finally {
    llm.close();
  }
});

test("stories260K on target cpu: top-5 logits within 1e-4 of llama2.c (teacher forcing, one prefill step)", (t) => {
  const model = fixture(t, "models/stories260K");
  const goldens = fixtures(t, ...goldenFiles);
  if (!model || !goldens) return;
  const ckpt = openCheckpoint(model);
  const engine = Engine.fromCheckpoint(ckpt, { maxSeqLen: 512, blockSize: 16, backend: new CpuBackend({ threads: 2, parallelMacs: 0 }) });
  ckpt.close();
  let worst = 0;
  for (let i = 0; i < STORIES_PROMPTS.length; i++) {
    const c = readGolden(goldens[2 * i]);
    const tokens = [...c.prompt_token_ids, ...c.output_token_ids.slice(0, -1)];
    const seq = new Sequence(0, tokens);
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize).reserve(seq, tokens.length);
    const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize);
    step.logitRows = Int32Array.from({ length: c.output_token_ids.length }, (_, k) => c.prompt_token_ids.length - 1 + k);
    const logits = engine.forward(step);
    const V = engine.config.vocabSize;
    c.output_token_ids.forEach((_, k) => {
      for (const [id, want] of c.top_logits![k]) worst = Math.max(worst, Math.abs(logits[k * V + id] - want) / Math.max(1, Math.abs(want)));
    });
  }
  t.diagnostic(`worst relative logit error vs llama2.c ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `logit error ${worst}`);
});

test("llama-2-tiny-random GGUF (F16 weights, 32000 vocab) on target cpu: greedy output equals llama.cpp", async (t) => {
  const model = fixture(t, "models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf");
  const goldens = fixtures(t, "golden/llama-2-tiny-random.llamacpp.hello_world.json", "golden/llama-2-tiny-random.llamacpp.once_upon_a_time.json");
  if (!model || !goldens) return;
  const llm = await LLM.load(model, { build: { target: "cpu", dtype: "fp16" }, engineCache, maxSeqLen: 512 });
  try {
    for (const g of goldens.map(readGolden)) {
      const [r] = await llm.generate(g.prompt, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true });
      assert.deepEqual(r.outputs[0].tokenIds, g.output_token_ids);
    }
  } finally {
    llm.close();
  }
});

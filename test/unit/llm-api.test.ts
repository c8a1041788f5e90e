import { test } from "node:test";
import assert from "node:assert/strict";
import { LLM } from "../../src/api/llm.js";
import { OptionError } from "../../src/errors.js";

const load = () => LLM.load("synthetic:tiny", { maxSeqs: 8, maxSeqLen: 256 });

test("generate returns one output per prompt, in prompt order, equal to each run alone", async () => {
  const llm = await load();
  const prompts = ["Once upon a time", "The cat", "A much longer prompt than the others, to be chunked", "x"];
  const batch = await llm.generate(prompts, { temperature: 0, maxTokens: 12, ignoreEos: true });
  for (const [i, p] of prompts.entries()) {
    const [alone] = await llm.generate(p, { temperature: 0, maxTokens: 12, ignoreEos: true });
    assert.equal(batch[i].prompt, p);
    assert.deepEqual(batch[i].outputs[0].tokenIds, alone.outputs[0].tokenIds);
    assert.equal(batch[i].outputs[0].finishReason, "length");
  }
  llm.close();
});

test("generateStream: deltas concatenate to the cumulative text and token ids grow by one", async () => {
  const llm = await load();
  let text = "";
  let n = 0;
  let last;
  for await (const o of llm.generateStream("Hello", { temperature: 0.7, seed: 3, maxTokens: 10, ignoreEos: true })) {
    text += o.outputs[0].delta;
    assert.equal(o.outputs[0].text, text);
    assert.equal(o.outputs[0].tokenIds.length, ++n);
    last = o;
  }
  assert.equal(last!.finished, true);
  assert.ok(last!.metrics.timeToFirstToken! > 0);
  llm.close();
});

test("n samples share the prompt's KV blocks, differ from each other, and repeat under the same seed", async () => {
  const llm = await load();
  const prompt = "Three samples from one prompt that is long enough to fill a few KV blocks.";
  const params = { temperature: 1, seed: 42, n: 3, maxTokens: 8, ignoreEos: true };
  const [a] = await llm.generate(prompt, params);
  assert.equal(a.outputs.length, 3);
  assert.deepEqual(a.outputs.map((o) => o.index), [0, 1, 2]);
  assert.ok(new Set(a.outputs.map((o) => o.tokenIds.join())).size > 1, "samples differ");
  assert.ok(llm.stats().prefixHits >= 2 * 64, "siblings reuse the parent's full prompt blocks");
  const [b] = await llm.generate(prompt, params);
  assert.deepEqual(b.outputs.map((o) => o.tokenIds), a.outputs.map((o) => o.tokenIds));
  llm.close();
});

test("logprobs: the greedy token is the top alternative; prompt logprobs cover every prompt token", async () => {
  const llm = await load();
  const [r] = await llm.generate("Logprobs please", { temperature: 0, maxTokens: 5, logprobs: 3, promptLogprobs: 2, ignoreEos: true });
  const out = r.outputs[0];
  assert.equal(out.logprobs!.length, 5);
  for (const [i, lp] of out.logprobs!.entries()) {
    assert.equal(lp.token, out.tokenIds[i]);
    assert.equal(lp.top![0].token, lp.token);
    assert.ok(Math.abs(lp.top![0].logprob - lp.logprob) < 1e-9);
    assert.ok(lp.top![0].logprob >= lp.top![1].logprob && lp.top![1].logprob >= lp.top![2].logprob);
  }
  const plp = r.promptLogprobs!;
  assert.equal(plp.length, r.promptTokenIds.length);
  assert.equal(plp[0], null);
  for (let i = 1; i < plp.length; i++) {
    assert.equal(plp[i]!.token, r.promptTokenIds[i]);
    assert.ok(plp[i]!.logprob <= 0 && plp[i]!.top!.length === 2);
  }
  // the same prompt extended by its first greedy token: that token's prompt logprob is the sampled one's
  const [r2] = await llm.generate({ promptTokenIds: [...r.promptTokenIds, out.tokenIds[0]] }, { temperature: 0, maxTokens: 1, promptLogprobs: 0 });
  assert.ok(Math.abs(r2.promptLogprobs!.at(-1)!.logprob - out.logprobs![0].logprob) < 1e-6);
  llm.close();
});

test("an AbortSignal cancels the request and frees its KV blocks at once", async () => {
  const llm = await load();
  const ac = new AbortController();
  let seen = 0;
  let last;
  for await (const o of llm.generateStream("Cancel me", { maxTokens: 200, ignoreEos: true }, { signal: ac.signal })) {
    if (++seen === 3) ac.abort();
    last = o;
  }
  assert.equal(last!.outputs[0].finishReason, "abort");
  assert.ok(last!.outputs[0].tokenIds.length < 200);
  const s = llm.stats();
  assert.equal(s.running + s.waiting, 0);
  assert.equal(s.kvBlocksFree, s.kvBlocksTotal);
  llm.close();
});

test("a KV budget too small for one block is refused, naming the option", async () => {
  await assert.rejects(LLM.load("synthetic:tiny", { kvCacheBytes: 10 }), (e: unknown) => e instanceof OptionError && /--kv-cache-bytes/.test((e as Error).message));
});

test("bad sampling options are refused before anything runs", async () => {
  const llm = await load();
  await assert.rejects(llm.generate("x", { temperature: -1 }), OptionError);
  llm.close();
});

test("a logit bias on a token outside the vocabulary is refused up front, not inside a shared step", async () => {
  const llm = await load();
  const other = llm.generate("ok", { maxTokens: 4, temperature: 0 });
  await assert.rejects(llm.generate("x", { logitBias: { 99999: 5 } }), (e: unknown) => e instanceof OptionError && /logitBias/.test((e as Error).message));
  assert.equal((await other)[0].outputs[0].finishReason, "length", "the request beside it is unharmed");
  llm.close();
});

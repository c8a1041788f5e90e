import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../src/engine/engine.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { EngineCore } from "../../src/runtime/engine-core.js";
import { normalizeSamplingParams } from "../../src/runtime/sampling-params.js";
import { AsciiTokenizer, ASCII_VOCAB_SIZE } from "../../src/tokenizer/ascii.js";
import { Rng } from "../../src/runtime/rng.js";
import { argmax } from "../../src/runtime/sampler.js";
import type { BoundGraph } from "../../src/backends/backend.js";

const config = syntheticConfig({ numLayers: 2, hiddenSize: 32, numHeads: 4, numKvHeads: 2, intermediateSize: 48, vocabSize: ASCII_VOCAB_SIZE, maxPositionEmbeddings: 128 });
const ckpt = syntheticCheckpoint(config, 11);
const tok = new AsciiTokenizer();

function core(opts: { numBlocks?: number; maxSeqs?: number; maxBatchTokens?: number } = {}) {
  const engine = Engine.fromCheckpoint(ckpt, { blockSize: 4, maxSeqLen: 128, maxSeqs: opts.maxSeqs ?? 8, numBlocks: opts.numBlocks });
  return new EngineCore(engine, tok, { maxSeqs: opts.maxSeqs ?? 8, maxBatchTokens: opts.maxBatchTokens ?? 64 });
}

function randomPrompt(rng: Rng, len: number): number[] {
  return [1, ...Array.from({ length: len }, () => 4 + Math.floor(rng.nextFloat() * 90))];
}

/** Runs the core until idle, collecting each request's output ids. */
function drain(c: EngineCore, out: Map<string, number[]>): void {
  for (let step = 0; c.hasWork; step++) {
    for (const u of c.step()) out.get(u.id)!.push(...u.newTokenIds);
    if (step > 100000) throw new Error("no progress");
  }
}

test("greedy outputs under in-flight batching equal each prompt run alone", () => {
  const rng = new Rng(5);
  const prompts = Array.from({ length: 32 }, () => randomPrompt(rng, 1 + Math.floor(rng.nextFloat() * 40)));
  const maxTokens = prompts.map(() => 1 + Math.floor(rng.nextFloat() * 12));
  const params = (i: number) => normalizeSamplingParams({ temperature: 0, maxTokens: maxTokens[i], ignoreEos: true });

  const alone = prompts.map((p, i) => {
    const c = core({ maxSeqs: 1 });
    const out = new Map([["a", [] as number[]]]);
    c.addRequest("a", p, params(i));
    drain(c, out);
    return out.get("a")!;
  });

  // the same prompts arriving at random steps into one shared core with a small token budget (chunked prefill)
  const c = core({ maxSeqs: 6, maxBatchTokens: 16 });
  const arrivals = prompts.map(() => Math.floor(rng.nextFloat() * 30)).map((s, i) => ({ s, i }));
  const out = new Map(prompts.map((_, i) => [`r${i}`, [] as number[]]));
  for (let step = 0; step < 30; step++) {
    for (const a of arrivals.filter((a) => a.s === step)) c.addRequest(`r${a.i}`, prompts[a.i], params(a.i));
    for (const u of c.step()) out.get(u.id)!.push(...u.newTokenIds);
  }
  drain(c, out);
  prompts.forEach((_, i) => assert.deepEqual(out.get(`r${i}`), alone[i], `prompt ${i}`));
});

test("2,000 requests with cancellations under a tight KV budget: all end, no deadlock, no leaked blocks", () => {
  const rng = new Rng(9);
  const c = core({ numBlocks: 24, maxSeqs: 8, maxBatchTokens: 32 });
  const total = 2000;
  const out = new Map<string, number[]>();
  const done = new Set<string>();
  let added = 0;
  let step = 0;
  while (done.size < total) {
    // a few arrivals per step
    for (let k = Math.floor(rng.nextFloat() * 4); k > 0 && added < total; k--, added++) {
      const id = `q${added}`;
      out.set(id, []);
      c.addRequest(id, randomPrompt(rng, Math.floor(rng.nextFloat() * 30)), normalizeSamplingParams({ temperature: 0.9, seed: added, maxTokens: 1 + Math.floor(rng.nextFloat() * 20) }));
    }
    // random cancellations
    if (rng.nextFloat() < 0.2 && added > done.size) {
      const id = `q${Math.floor(rng.nextFloat() * added)}`;
      const u = c.abort(id);
      if (u) done.add(id);
    }
    for (const u of c.step()) if (u.finished) done.add(u.id);
    assert.ok(++step < 200000, "no progress");
  }
  assert.equal(c.hasWork, false);
  assert.ok(c.stats().numPreemptions > 0, "the budget was meant to force preemption");
  assert.equal(c.pool.numFree, c.pool.numBlocks, "every block is back in the pool");
});

test("a prompt longer than the engine's context is refused with both numbers", () => {
  const c = core();
  assert.throws(() => c.addRequest("x", new Array(200).fill(5), normalizeSamplingParams({})), /200 tokens.*at most 128/);
});

test("generation stops at EOS, at a stop token, at a stop string, and at max tokens", () => {
  const c = core();
  const greedy = { temperature: 0, ignoreEos: true };
  const ref = new Map([["r", [] as number[]]]);
  c.addRequest("r", [1, 10, 11, 12], normalizeSamplingParams({ ...greedy, maxTokens: 8 }));
  drain(c, ref);
  const ids = ref.get("r")!;
  assert.equal(ids.length, 8);
  const stopTok = ids[3];
  const c2 = core();
  c2.addRequest("s", [1, 10, 11, 12], normalizeSamplingParams({ ...greedy, maxTokens: 8, stopTokenIds: [stopTok] }));
  let last;
  while (c2.hasWork) for (const u of c2.step()) last = u;
  assert.equal(last!.finishReason, "stop");
  assert.equal(last!.request.seq.outputIds.length, ids.indexOf(stopTok) + 1);
  const text = tok.decode(ids);
  const stopStr = text.slice(2, 4);
  const c3 = core();
  const r3 = c3.addRequest("t", [1, 10, 11, 12], normalizeSamplingParams({ ...greedy, maxTokens: 8, stop: [stopStr] }));
  while (c3.hasWork) c3.step();
  assert.equal(r3.finishReason, "stop");
  assert.equal(r3.text, text.slice(0, text.indexOf(stopStr)));
});

test("shared-prefix workload: prefix hits > 0 and outputs identical to caching off", () => {
  const rng = new Rng(21);
  const system = randomPrompt(rng, 23);
  const prompts = Array.from({ length: 12 }, () => [...system, ...randomPrompt(rng, 1 + Math.floor(rng.nextFloat() * 10)).slice(1)]);
  const run = (enablePrefixCaching: boolean) => {
    const engine = Engine.fromCheckpoint(ckpt, { blockSize: 4, maxSeqLen: 128, maxSeqs: 4 });
    const c = new EngineCore(engine, tok, { maxSeqs: 4, maxBatchTokens: 40, enablePrefixCaching });
    const out = new Map(prompts.map((_, i) => [`p${i}`, [] as number[]]));
    prompts.forEach((p, i) => c.addRequest(`p${i}`, p, normalizeSamplingParams({ temperature: 0, maxTokens: 6, ignoreEos: true })));
    drain(c, out);
    return { out, stats: c.stats() };
  };
  const on = run(true);
  const off = run(false);
  assert.ok(on.stats.prefixHits > 0, "prefix hits");
  assert.equal(off.stats.prefixHits, 0);
  assert.deepEqual([...on.out], [...off.out]);
});

/** The engine's own bound graph with forwardTopK(k = 1) added, picking argmax as a GPU backend would. */
function deviceGreedyCore(nanRows = false) {
  const plain = Engine.fromCheckpoint(ckpt, { blockSize: 4, maxSeqLen: 128, maxSeqs: 8 });
  const bound = (plain as unknown as { bound: BoundGraph }).bound;
  const calls = { topk: 0, full: 0 };
  const V = config.vocabSize;
  const wrapped: BoundGraph = {
    kv: bound.kv,
    kvBytes: bound.kvBytes,
    copyBlock: (s, d) => bound.copyBlock(s, d),
    forward: (step) => (calls.full++, bound.forward(step)),
    forwardTopK: (step, k) => {
      assert.equal(k, 1);
      calls.topk++;
      const logits = bound.forward(step).get("logits")!;
      const R = step.logitRows.length;
      const ids = Int32Array.from({ length: R }, (_, r) => (nanRows ? -1 : argmax(logits.subarray(r * V, (r + 1) * V))));
      return { ids, values: new Float32Array(R) };
    },
  };
  const engine = new Engine(plain.config, plain.graph, wrapped, plain.maxSeqLen, plain.limits);
  return { c: new EngineCore(engine, tok, { maxSeqs: 8, maxBatchTokens: 24 }), calls };
}

test("device greedy: tokens picked by the backend equal host sampling; requests that read the logits fall back to them", () => {
  const rng = new Rng(21);
  const prompts = Array.from({ length: 12 }, () => randomPrompt(rng, 1 + Math.floor(rng.nextFloat() * 30)));
  // plain greedy, greedy with logprobs, greedy with a penalty, seeded sampling: only the first kind may use the device path
  const kinds = [{}, { logprobs: 2 }, { repetitionPenalty: 1.3 }, { temperature: 0.8, seed: 3 }];
  const params = (i: number) => normalizeSamplingParams({ temperature: 0, maxTokens: 10, ignoreEos: true, ...kinds[i % kinds.length] });
  const run = (c: EngineCore, only?: (i: number) => boolean) => {
    const out = new Map<string, number[]>();
    prompts.forEach((p, i) => {
      if (only && !only(i)) return;
      out.set(`r${i}`, []);
      c.addRequest(`r${i}`, p, params(i));
    });
    drain(c, out);
    return out;
  };
  const host = run(core({ maxSeqs: 8, maxBatchTokens: 24 }));
  const mixed = deviceGreedyCore();
  assert.deepEqual([...run(mixed.c)], [...host]);
  assert.ok(mixed.calls.full > 0, "non-greedy requests read the full logits");
  const greedyOnly = deviceGreedyCore();
  const plainGreedy = run(greedyOnly.c, (i) => i % kinds.length === 0);
  for (const [id, toks] of plainGreedy) assert.deepEqual(toks, host.get(id));
  assert.ok(greedyOnly.calls.topk > 0);
  assert.equal(greedyOnly.calls.full, 0, "plain greedy requests never copy logits out");
});

test("device greedy: a row with NaN logits fails the step with the sampler's error", () => {
  const { c } = deviceGreedyCore(true);
  c.addRequest("a", [1, 5, 6], normalizeSamplingParams({ temperature: 0, maxTokens: 4 }));
  assert.throws(() => c.step(), /NaN or are all -Infinity/);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/runtime/rng.js";
import { Sampler, argmax, selectTopK } from "../../src/runtime/sampler.js";
import { normalizeSamplingParams, type SamplingParamsInput } from "../../src/runtime/sampling-params.js";
import { LlmrtError, OptionError } from "../../src/errors.js";

const mk = (p: SamplingParamsInput, prompt: number[] = []) => new Sampler(normalizeSamplingParams({ seed: 1234, ...p }), { promptTokens: prompt });
const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);
const sorted = (a: ArrayLike<number>) => Array.from(a).sort((x, y) => x - y);

function softmax(x: ArrayLike<number>, T = 1): number[] {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp((v - m) / T));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Pearson chi-square of observed counts against expected probabilities (cells with p > 0). */
function chiSquare(counts: number[], probs: number[], n: number): number {
  let chi = 0;
  probs.forEach((p, i) => {
    if (p > 0) chi += (counts[i] - n * p) ** 2 / (n * p);
    else assert.equal(counts[i], 0, `token ${i} has probability 0 but was drawn`);
  });
  return chi;
}

function draws(s: Sampler, logits: Float32Array, n: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.sample(logits).token]++;
  return counts;
}

/** Normal(0, 1) from an Rng, for random logits. */
function gauss(r: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - r.nextFloat())) * Math.cos(2 * Math.PI * r.nextFloat());
}

test("rng: xoshiro128** reference outputs, floats in [0,1), seeds and streams", () => {
  const r = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual([r.nextU32(), r.nextU32(), r.nextU32()], [11520, 0, 5927040]);
  const a = new Rng(42);
  const b = new Rng(42);
  const seqA = Array.from({ length: 100 }, () => a.nextFloat());
  assert.deepEqual(seqA, Array.from({ length: 100 }, () => b.nextFloat()));
  assert.ok(seqA.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual(seqA.slice(0, 4), [0, 1, 2, 3].map(() => new Rng(43).nextFloat()));
  assert.notEqual(new Rng(42, 0).nextU32(), new Rng(42, 1).nextU32());
  assert.notEqual(new Rng().nextU32(), new Rng().nextU32()); // random seeds
  assert.notEqual(new Rng(-5).nextU32(), new Rng(5).nextU32());
  const resumed = Rng.fromState(a.getState());
  assert.equal(resumed.nextU32(), a.nextU32());
  const mean = Array.from({ length: 20000 }, () => a.nextFloat()).reduce((x, y) => x + y) / 20000;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
});

test("greedy is argmax, ties go to the lowest id, input untouched, no randomness", () => {
  const logits = Float32Array.of(0.1, 3, -2, 3, 2.9);
  const copy = logits.slice();
  const s = mk({ temperature: 0 });
  for (let i = 0; i < 5; i++) assert.equal(s.sample(logits).token, 1);
  assert.deepEqual(logits, copy);
  assert.equal(argmax(Float32Array.of(-Infinity, -1, -1)), 1);
  assert.throws(() => argmax(Float32Array.of(-1, 5, NaN, 5)), LlmrtError);
  assert.throws(() => argmax(Float32Array.of(-Infinity, -Infinity)), LlmrtError);
  // top-k/p and min-p never change the argmax
  assert.equal(mk({ temperature: 0, topK: 1, topP: 0.1, minP: 0.9 }).sample(logits).token, 1);
  assert.deepEqual(mk({ temperature: 0 }).distribution(logits), { ids: Int32Array.of(1), probs: Float64Array.of(1) });
});

test("selectTopK returns the k largest, best first, ties by lowest id", () => {
  const x = Float32Array.of(1, 5, 3, 5, 2, 3, 0);
  const out = new Int32Array(4);
  assert.equal(selectTopK(x, x.length, 4, out), 4);
  assert.deepEqual(Array.from(out), [1, 3, 2, 5]);
  const r = new Rng(7);
  const big = Float32Array.from({ length: 5000 }, () => Math.round(gauss(r) * 4) / 4); // many ties
  const ref = Array.from(big.keys()).sort((a, b) => big[b] - big[a] || a - b);
  for (const k of [1, 7, 100, 5000]) {
    const o = new Int32Array(k);
    selectTopK(big, big.length, k, o);
    assert.deepEqual(Array.from(o), ref.slice(0, k));
  }
});

test("top-k keeps exactly k tokens with renormalised probabilities", () => {
  const probs = [0.05, 0.3, 0.1, 0.4, 0.15];
  const s = mk({ topK: 3 });
  const d = s.distribution(logitsOf(probs));
  assert.deepEqual(sorted(d.ids), [1, 3, 4]);
  const z = 0.3 + 0.4 + 0.15;
  d.ids.forEach((id, i) => assert.ok(Math.abs(d.probs[i] - probs[id] / z) < 1e-6));
  const n = 20000;
  const counts = draws(s, logitsOf(probs), n);
  const expect = probs.map((p, i) => ([1, 3, 4].includes(i) ? p / z : 0));
  const chi = chiSquare(counts, expect, n);
  assert.ok(chi < 16, `chi-square ${chi} (df 2)`);
});

test("top-p keeps the smallest most-likely set reaching p, relative to top-k mass", () => {
  const probs = [0.15, 0.5, 0.05, 0.3];
  const kept = (p: SamplingParamsInput) => sorted(mk(p).distribution(logitsOf(probs)).ids);
  assert.deepEqual(kept({ topP: 0.45 }), [1]);
  assert.deepEqual(kept({ topP: 0.75 }), [1, 3]);
  assert.deepEqual(kept({ topP: 0.85 }), [0, 1, 3]);
  assert.deepEqual(kept({ topP: 0.999 }), [0, 1, 2, 3]);
  // top-k 2 leaves {0.5, 0.3} -> renormalised {0.625, 0.375}; p = 0.6 keeps only the first
  assert.deepEqual(kept({ topK: 2, topP: 0.6 }), [1]);
  assert.deepEqual(kept({ topK: 2, topP: 0.65 }), [1, 3]);
  // at temperature 2 the distribution flattens, so p = 0.75 needs three tokens
  assert.deepEqual(kept({ topP: 0.75, temperature: 2 }), [0, 1, 3]);
});

test("top-p over a large vocabulary matches a full-sort reference, ties by lowest id", () => {
  const r = new Rng(99);
  const V = 10000;
  const smooth = Float32Array.from({ length: V }, () => gauss(r) * 3);
  const ties = Float32Array.from({ length: V }, () => Math.round(gauss(r) * 2)); // heavy ties
  const cases: [Float32Array, number, number, number][] = [
    [smooth, 0.9, 1, 0], [smooth, 0.5, 0.7, 0], [smooth, 0.99, 1.3, 0], [smooth, 0.9, 1, 500], [smooth, 0.3, 1, 0],
    [ties, 0.9, 1, 0], [ties, 0.5, 1, 0], [ties, 0.7, 2, 3000],
  ];
  for (const [logits, topP, temperature, topK] of cases) {
    const p = softmax(logits, temperature);
    const order = Array.from(logits.keys()).sort((a, b) => p[b] - p[a] || a - b);
    const pool = topK > 0 ? order.slice(0, topK) : order;
    const z = pool.reduce((acc, i) => acc + p[i], 0);
    let refLen = 0;
    for (let cum = 0; refLen < pool.length && cum < topP; refLen++) cum += p[pool[refLen]] / z;
    const d = mk({ topP, temperature, topK }).distribution(logits);
    // the boundary token may differ by float rounding; the kept set is always a best-first prefix
    assert.ok(Math.abs(d.ids.length - refLen) <= 1, `topP ${topP}: kept ${d.ids.length}, reference ${refLen}`);
    assert.deepEqual(sorted(d.ids), sorted(order.slice(0, d.ids.length)));
    assert.ok(Math.abs(d.probs.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  }
  // a flat distribution: exactly half the tokens, the lowest ids
  assert.deepEqual(sorted(mk({ topP: 0.5 }).distribution(new Float32Array(100)).ids), Array.from({ length: 50 }, (_, i) => i));
});

test("min-p drops tokens below minP times the top probability", () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const kept = (p: SamplingParamsInput) => sorted(mk(p).distribution(logitsOf(probs)).ids);
  assert.deepEqual(kept({ minP: 0.2 }), [0, 1, 2]); // cut 0.1
  assert.deepEqual(kept({ minP: 0.5 }), [0, 1]); // cut 0.25
  assert.deepEqual(kept({ minP: 1 }), [0]);
  assert.deepEqual(kept({ minP: 0.2, topP: 0.75 }), [0, 1]); // after top-p
  assert.deepEqual(kept({ minP: 0.2, topK: 3 }), [0, 1, 2]); // after top-k
  const d = mk({ minP: 0.2 }).distribution(logitsOf(probs));
  d.ids.forEach((id, i) => assert.ok(Math.abs(d.probs[i] - probs[id] / 0.95) < 1e-6));
});

test("20k draws match softmax(logits / T)", () => {
  const r = new Rng(5);
  const logits = Float32Array.from({ length: 12 }, () => gauss(r) * 1.5);
  for (const T of [1, 0.6, 1.8]) {
    const n = 20000;
    const chi = chiSquare(draws(mk({ temperature: T, seed: 77 }), logits, n), softmax(logits, T), n);
    assert.ok(chi < 35, `T=${T}: chi-square ${chi} (df 11, p=0.001 at 31.3)`);
  }
});

test("same seed gives the same tokens; other seeds and streams differ", () => {
  const r = new Rng(3);
  const logits = Float32Array.from({ length: 1000 }, () => gauss(r) * 2);
  const run = (seed: number, stream = 0, p: SamplingParamsInput = {}) => {
    const s = new Sampler(normalizeSamplingParams({ seed, topK: 50, topP: 0.95, ...p }), { stream });
    return Array.from({ length: 40 }, () => s.sample(logits).token);
  };
  assert.deepEqual(run(1), run(1));
  assert.deepEqual(run(1, 0, { topK: 0, topP: 1 }), run(1, 0, { topK: 0, topP: 1 }));
  assert.notDeepEqual(run(1), run(2));
  assert.notDeepEqual(run(1, 0), run(1, 1));
});

test("logit bias and penalties match hand-computed values", () => {
  const logits = Float32Array.of(2, -1, 0.5, 3, -0.5, 1);
  const copy = logits.slice();
  // repetition over prompt + output; presence/frequency over output only
  const s = mk({ repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25, logitBias: { 4: 1, 5: -3 } }, [0, 1]);
  s.accept(1);
  s.accept(1);
  s.accept(2);
  s.accept(4);
  const f = Math.fround;
  const expected = [
    f(2 / 2), // prompt only: repetition (positive -> divide)
    f(-1 * 2) - (2 * 0.25 + 0.5), // prompt + twice in output: negative -> multiply, then penalties
    f(0.5 / 2) - (0.25 + 0.5), // once in output
    3, // untouched
    f(f(-0.5 + 1) / 2) - (0.25 + 0.5), // bias first (flips the sign), then penalties
    f(1 - 3), // bias only
  ].map(f);
  assert.deepEqual(Array.from(s.prepare(logits)), expected);
  assert.deepEqual(logits, copy);
  // sample() records its token; record: false does not
  const g = mk({ temperature: 0, frequencyPenalty: 2 });
  const flat = Float32Array.of(1, 0.5, 0.2);
  assert.equal(g.sample(flat).token, 0);
  assert.equal(g.sample(flat).token, 1); // 1 - 2 < 0.5
  assert.equal(g.sample(flat, { record: false }).token, 2); // 0.5 - 2 < 0.2
  assert.equal(g.sample(flat).token, 2);
  // without penalties the input is used as is
  assert.equal(mk({}).prepare(logits), logits);
});

test("logprobs are of the raw distribution; top-N is best first", () => {
  const logits = Float32Array.of(1, 3, 2, 0);
  const raw = softmax(logits).map(Math.log);
  const s = mk({ logprobs: 2, temperature: 0.3, logitBias: { 0: 10 } });
  const res = s.sample(logits);
  assert.equal(res.token, 0); // bias steers the pick ...
  assert.ok(Math.abs(res.logprob! - raw[0]) < 1e-6); // ... but not the reported logprob
  assert.deepEqual(res.topLogprobs!.map((t) => t.token), [1, 2]);
  res.topLogprobs!.forEach((t) => assert.ok(Math.abs(t.logprob - raw[t.token]) < 1e-6));
  const none = mk({}).sample(logits);
  assert.equal(none.logprob, undefined);
  assert.equal(none.topLogprobs, undefined);
  const zero = mk({ logprobs: 0 }).sample(logits);
  assert.equal(typeof zero.logprob, "number");
  assert.equal(zero.topLogprobs, undefined);
});

test("bad logits and out-of-vocab bias are reported", () => {
  assert.throws(() => mk({}).sample(Float32Array.of(-Infinity, -Infinity)), LlmrtError);
  assert.throws(() => mk({}).sample(Float32Array.of(NaN, NaN)), LlmrtError);
  assert.throws(() => mk({}).sample(Float32Array.of(0, NaN, 1)), LlmrtError);
  assert.throws(() => mk({ logitBias: { 10: 1 } }).sample(new Float32Array(4)), (e: unknown) => e instanceof OptionError && /logitBias.*10/.test(e.message));
  // masked tokens are never drawn
  const counts = draws(mk({}), Float32Array.of(0, -Infinity, 0), 2000);
  assert.equal(counts[1], 0);
});

test("a 128k vocabulary with top-k/top-p samples (time per sample reported, not asserted)", (t) => {
  const r = new Rng(11);
  const V = 128256;
  const logits = Float32Array.from({ length: V }, () => gauss(r) * 2);
  const s = mk({ topK: 40, topP: 0.9, repetitionPenalty: 1.1 }, [1, 2, 3]);
  const p = mk({ topP: 0.9 });
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) {
    assert.ok(s.sample(logits).token < V);
    assert.ok(p.sample(logits).token < V);
  }
  // speed is a benchmark's business; a loaded CI machine must not fail this test
  t.diagnostic(`${((performance.now() - t0) / 40).toFixed(2)} ms per sample`);
});

test("NaN logits are reported on every path", () => {
  const bad = Float32Array.of(2, NaN, 1, 0.5);
  for (const p of [{ temperature: 0 }, {}, { topK: 3 }, { topP: 0.9 }, { minP: 0.01 }, { topK: 3, topP: 0.9, minP: 0.1 }]) {
    assert.throws(() => mk(p).sample(bad), LlmrtError, JSON.stringify(p));
  }
});

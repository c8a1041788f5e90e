import { test } from "node:test";
import assert from "node:assert/strict";
import { parseSpeculative } from "../../src/runtime/speculative/config.js";
import { proposeNgram } from "../../src/runtime/speculative/ngram.js";
import { verifyDrafts } from "../../src/runtime/speculative/verify.js";
import { Sampler } from "../../src/runtime/sampler.js";
import { Rng } from "../../src/runtime/rng.js";
import { normalizeSamplingParams } from "../../src/runtime/sampling-params.js";
import { OptionError } from "../../src/errors.js";

test("--speculative strings parse, and bad ones name the problem", () => {
  assert.deepEqual(parseSpeculative("ngram,k=5,n=2"), { method: "ngram", k: 5, n: 2 });
  assert.deepEqual(parseSpeculative("ngram"), { method: "ngram", k: 4, n: 3 });
  assert.deepEqual(parseSpeculative("draft:/m/x.gguf,k=3"), { method: "draft", model: "/m/x.gguf", k: 3 });
  assert.throws(() => parseSpeculative("medusa"), OptionError);
  assert.throws(() => parseSpeculative("ngram,k=0"), /k=0/);
  assert.throws(() => parseSpeculative("ngram,depth=2"), /depth/);
});

test("n-gram lookup proposes what followed the most recent match of the longest suffix", () => {
  assert.deepEqual(proposeNgram([1, 2, 3, 4, 5, 9, 1, 2, 3], 3, 3), [4, 5, 9]);
  assert.deepEqual(proposeNgram([7, 2, 3, 8, 2, 3, 9, 1, 2, 3], 2, 2), [9, 1], "most recent occurrence wins");
  assert.deepEqual(proposeNgram([5, 6, 7, 6], 4, 3), [7, 6], "falls back to shorter suffixes; stops at the end");
  assert.deepEqual(proposeNgram([1, 2, 3], 4, 3), []);
});

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

test("rejection sampling keeps the target's distribution exactly (chi-square over 40k draws)", () => {
  const V = 6;
  const targetLogits = Float32Array.from([1.2, 0.3, -0.5, 2.0, 0.0, -1.5]);
  const p = softmax([...targetLogits]);
  const q = [0.05, 0.4, 0.3, 0.05, 0.1, 0.1]; // a poor draft: mass where the target has little
  const qMap = new Map(q.map((v, i) => [i, v]));
  const rng = new Rng(77);
  const counts = new Array(V).fill(0);
  const N = 40000;
  let accepted = 0;
  for (let i = 0; i < N; i++) {
    const sampler = new Sampler(normalizeSamplingParams({ temperature: 1, seed: i }));
    let u = rng.nextFloat();
    let d = 0;
    while (d < V - 1 && (u -= q[d]) >= 0) d++;
    const first: number[] = [];
    const r = verifyDrafts(sampler, rng, [targetLogits, targetLogits], [d], [qMap], (t) => (first.push(t), true));
    counts[first[0]]++;
    accepted += r.accepted;
  }
  let chi2 = 0;
  for (let t = 0; t < V; t++) chi2 += (counts[t] - N * p[t]) ** 2 / (N * p[t]);
  // 5 degrees of freedom: P(chi2 > 20.5) < 0.001
  assert.ok(chi2 < 20.5, `chi2 ${chi2.toFixed(2)}; counts ${counts}`);
  const expectedAccept = q.reduce((a, qi, t) => a + Math.min(qi, p[t]), 0);
  assert.ok(Math.abs(accepted / N - expectedAccept) < 0.01, `acceptance ${accepted / N} vs ${expectedAccept}`);
});

test("n-gram (point-mass) drafts under sampling also keep the target's distribution", () => {
  const targetLogits = Float32Array.from([0.5, 1.5, -0.2, 0.9]);
  const p = softmax([...targetLogits]);
  const rng = new Rng(5);
  const counts = [0, 0, 0, 0];
  const N = 30000;
  for (let i = 0; i < N; i++) {
    const sampler = new Sampler(normalizeSamplingParams({ temperature: 1, seed: 1000 + i }));
    const first: number[] = [];
    verifyDrafts(sampler, rng, [targetLogits, targetLogits], [2], [null], (t) => (first.push(t), true));
    counts[first[0]]++;
  }
  let chi2 = 0;
  for (let t = 0; t < 4; t++) chi2 += (counts[t] - N * p[t]) ** 2 / (N * p[t]);
  assert.ok(chi2 < 16.3, `chi2 ${chi2.toFixed(2)}`); // 3 dof, p < 0.001
});

test("greedy verification keeps drafts up to the first disagreement, then the target's token", () => {
  const rows = [Float32Array.of(0, 5, 1), Float32Array.of(3, 0, 1), Float32Array.of(0, 0, 9), Float32Array.of(7, 0, 0)];
  const sampler = new Sampler(normalizeSamplingParams({ temperature: 0 }));
  const got: number[] = [];
  const r = verifyDrafts(sampler, new Rng(1), rows, [1, 0, 1], [null, null, null], (t) => (got.push(t), true));
  assert.deepEqual(got, [1, 0, 2]);
  assert.equal(r.accepted, 2);
  const all: number[] = [];
  const r2 = verifyDrafts(new Sampler(normalizeSamplingParams({ temperature: 0 })), new Rng(1), rows, [1, 0, 2], [null, null, null], (t) => (all.push(t), true));
  assert.deepEqual(all, [1, 0, 2, 0], "all kept, plus the bonus token");
  assert.equal(r2.accepted, 3);
});

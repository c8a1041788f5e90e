import { test } from "node:test";
import assert from "node:assert/strict";
import { beamSearch, type BeamScorer, type Candidate } from "../../src/runtime/beam-search.js";

/** A tiny Markov "model" over tokens 0..4 (2 = EOS): next-token logprobs depend on the last token. */
const V = 5;
const EOS = 2;
function table(seed: number): number[][] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length: V + 1 }, () => {
    const w = Array.from({ length: V }, () => rnd() + 0.05);
    const z = w.reduce((a, b) => a + b, 0);
    return w.map((x) => Math.log(x / z));
  });
}
const scorerFor = (lp: number[][]): BeamScorer => async (beams, topN) =>
  beams.map((b) => {
    const row = lp[b.length === 0 ? V : b[b.length - 1]];
    return row.map((logprob, token): Candidate => ({ token, logprob })).sort((a, c) => c.logprob - a.logprob).slice(0, topN);
  });

/** Every sequence of at most L tokens that ends at EOS or has length L, with its score. */
function enumerate(lp: number[][], L: number, lengthPenalty: number) {
  const out: { tokenIds: number[]; score: number }[] = [];
  const walk = (seq: number[], cum: number) => {
    if (seq.length > 0 && (seq.at(-1) === EOS || seq.length === L)) {
      out.push({ tokenIds: seq, score: cum / Math.pow(seq.length, lengthPenalty) });
      return;
    }
    const row = lp[seq.length === 0 ? V : seq.at(-1)!];
    for (let t = 0; t < V; t++) walk([...seq, t], cum + row[t]);
  };
  walk([], 0);
  return out.sort((a, b) => b.score - a.score);
}

for (const lengthPenalty of [0, 1, 2]) {
  test(`a beam as wide as the search space finds the exhaustive optimum (length penalty ${lengthPenalty})`, async () => {
    for (const seed of [1, 2, 3, 4]) {
      const lp = table(seed);
      const L = 4;
      const best = enumerate(lp, L, lengthPenalty);
      const got = await beamSearch(scorerFor(lp), { beamWidth: V ** L, maxTokens: L, lengthPenalty, earlyStopping: "never", n: 3, eosIds: [EOS] });
      // a beam of width V^L keeps every prefix, so it is exhaustive
      assert.deepEqual(got.map((h) => h.tokenIds), best.slice(0, 3).map((h) => h.tokenIds), `seed ${seed}`);
      got.forEach((h, i) => assert.ok(Math.abs(h.score - best[i].score) < 1e-12));
    }
  });
}

test("narrow beams keep the W best prefixes at each step; EOS hypotheses only from the top W", async () => {
  // step 1: tokens 0 (-0.1), 2=EOS (-0.5), 1 (-1), ...; W=2 keeps 0 and records EOS (rank 1 < W)
  const lp = table(9);
  const hyps = await beamSearch(scorerFor(lp), { beamWidth: 2, maxTokens: 3, earlyStopping: "never", n: 2, eosIds: [EOS] });
  assert.equal(hyps.length, 2);
  for (const h of hyps) assert.ok(h.tokenIds.length <= 3 && (h.finishedByEos ? h.tokenIds.at(-1) === EOS : h.tokenIds.length === 3));
  assert.ok(hyps[0].score >= hyps[1].score);
});

test("early stopping: true stops at W finished hypotheses; ignoreEos never finishes early", async () => {
  const eosFirst: number[][] = Array.from({ length: V + 1 }, () => [Math.log(0.1), Math.log(0.1), Math.log(0.6), Math.log(0.1), Math.log(0.1)]);
  let calls = 0;
  const scorer: BeamScorer = async (b, n) => (calls++, scorerFor(eosFirst)(b, n));
  const h = await beamSearch(scorer, { beamWidth: 1, maxTokens: 10, earlyStopping: true, eosIds: [EOS] });
  assert.deepEqual(h[0].tokenIds, [EOS]);
  assert.equal(calls, 1);
  const h2 = await beamSearch(scorerFor(eosFirst), { beamWidth: 1, maxTokens: 4, eosIds: [EOS], ignoreEos: true });
  assert.deepEqual(h2[0].tokenIds, [EOS, EOS, EOS, EOS]);
  assert.equal(h2[0].finishedByEos, false);
});

/**
 * The int4-wo accuracy gate of issue 7: perplexity at most 5% above FP32 with calibrated
 * int4 g32 weights (`--calib-data`: activation-aware scales, then GPTQ), scored on text
 * sampled from the FP32 model and on the llama2.c goldens. The sampled gate text is 8
 * samples of 300 tokens (seeds 7, 11 .. 31), scored together: one 300-token sample moves
 * the figure by several points between equally good engines (bench/RESULTS.md, "Symmetric
 * int4 g32"), 8 of them pin it to about a point. On stories260K:
 * - the default symmetric layout meets the gate with end-to-end scale tuning
 *   (`--tune-steps 64`, calibrated on 16 samples of 512 tokens), asserted;
 * - the asymmetric layout (--int4-asym: GPTQ keeps each group's asymmetric or symmetric
 *   grid) meets it with GPTQ alone on one 512-token sample, asserted;
 * - calibrated symmetric int4 is below round-to-nearest on the golden text and on the
 *   mean over two more sampled texts.
 * On the random-weight model whose dims divide by 128 the gate holds and is asserted
 * (near-uniform there: weakly telling). Engines are built as `llmrt build --quant int4-wo
 * --calib-data` builds them.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { perplexity, type PerplexityResult } from "../../src/eval/metrics.js";
import { sampleText } from "../../src/eval/sample-text.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import type { QuantOptions } from "../../src/quant/options.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../helpers/golden.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-gptq-gate-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const WINDOWS = { ctx: 128, stride: 64 };
const OPTS = { maxBatchTokens: 128, maxLogitRows: 128, maxSeqs: 1, maxSeqLen: 320 };
const GATE = 0.05;
const INT4_G32 = { scheme: "int4-wo", groupSize: 32 } as const;

/** Perplexity of each text under an engine built with `quant` (GPTQ calibrated on `calib` where asked). */
function scores(ckpt: Checkpoint, name: string, texts: number[][], calib: number[], quant?: Partial<QuantOptions>): PerplexityResult[] {
  const dir = join(tmp, name);
  buildEngineDir(ckpt, dir, { ...OPTS, ...(quant ? { quant: quant as QuantOptions } : {}) }, { calibration: { tokens: calib, source: "sampled text" } });
  const e = Engine.load(dir);
  try {
    return texts.map((t) => perplexity(e, t, WINDOWS));
  } finally {
    e.close();
  }
}
const ppls = (...args: Parameters<typeof scores>) => scores(...args).map((r) => r.perplexity);
/** The perplexity of several texts together: their scored tokens' mean NLL. */
const jointPpl = (rs: PerplexityResult[]) => Math.exp(rs.reduce((s, r) => s + r.nll * r.tokens, 0) / rs.reduce((s, r) => s + r.tokens, 0));

/** Texts sampled from the fp32 model: 300 tokens for each eval seed, `calibLen` for each calibration seed (concatenated). */
function samples(ckpt: Checkpoint, prompt: number[], evalSeeds: number[], calibLen = 512, calibSeeds = [3]): { evals: number[][]; calib: number[] } {
  const e = Engine.fromCheckpoint(ckpt, { maxSeqLen: 520, maxBatchTokens: 520, blockSize: 16 });
  try {
    return { evals: evalSeeds.map((s) => sampleText(e, prompt, 300 - prompt.length, s)), calib: calibSeeds.flatMap((s) => sampleText(e, prompt, calibLen - prompt.length, s)) };
  } finally {
    e.close();
  }
}

const rise = (q: number, fp: number) => q / fp - 1;
const pct = (v: number) => `${v >= 0 ? "+" : ""}${(100 * v).toFixed(2)}%`;

function goldenText(t: Parameters<typeof fixtures>[0]): number[] | null {
  const files = fixtures(t, ...STORIES_PROMPTS.map((p) => `golden/stories260K.llama2c.${p}.json`));
  return files && files.map(readGolden).flatMap((g) => [...g.prompt_token_ids, ...g.output_token_ids]);
}

const STORIES_PROMPT = [1, 403, 407, 261, 378]; // "Once upon a time"
const GATE_SEEDS = [7, 11, 13, 17, 19, 23, 29, 31];
const TUNE_CALIB_SEEDS = [3, 5, 6, 8, 9, 10, 12, 14, 15, 16, 18, 20, 21, 22, 24, 25];

/** The 5% gate on stories260K for one calibrated int4 g32 build, on the 8 sampled texts together and on the golden text. */
function storiesGate(t: Parameters<typeof fixtures>[0], name: string, prefix: string, quant: Partial<QuantOptions>, calibSeeds = [3]): void {
  const dir = fixture(t, "models/stories260K");
  const goldenTokens = goldenText(t);
  if (!dir || !goldenTokens) return;
  const ckpt = openCheckpoint(dir);
  try {
    const { evals, calib } = samples(ckpt, STORIES_PROMPT, GATE_SEEDS, 512, calibSeeds);
    const texts = [...evals, goldenTokens];
    const [fp32, q] = [scores(ckpt, `${prefix}-fp32`, texts, calib), scores(ckpt, `${prefix}-gptq`, texts, calib, quant)];
    const sampled = [jointPpl(q.slice(0, -1)), jointPpl(fp32.slice(0, -1))];
    const golden = [q.at(-1)!.perplexity, fp32.at(-1)!.perplexity];
    const rises = [rise(sampled[0], sampled[1]), rise(golden[0], golden[1])];
    const each = GATE_SEEDS.map((s, i) => `${s}: ${pct(rise(q[i].perplexity, fp32[i].perplexity))}`).join(", ");
    t.diagnostic(`stories260K int4-wo g32 ${name}: sampled (8 x 300 tokens) ${sampled[0].toFixed(4)} vs fp32 ${sampled[1].toFixed(4)} (${pct(rises[0])}; per seed ${each}), golden ${golden[0].toFixed(4)} vs ${golden[1].toFixed(4)} (${pct(rises[1])})`);
    for (const [i, label] of ["sampled (8 x 300 tokens)", "golden"].entries()) assert.ok(rises[i] <= GATE, `${label}: ${name} perplexity is ${pct(rises[i])} above fp32`);
  } finally {
    ckpt.close();
  }
}

test("int4-wo g32 gate on stories260K: calibrated symmetric int4 with scale tuning (--tune-steps 64) within 5% of fp32 on sampled text and on the golden text", (t) => {
  storiesGate(t, "calibrated + tuned", "s", { ...INT4_G32, method: "gptq", tuneSteps: 64 }, TUNE_CALIB_SEEDS);
});

test("int4-wo g32 asym gate on stories260K: calibrated int4 (--int4-asym) within 5% of fp32 on sampled text and on the golden text", (t) => {
  storiesGate(t, "calibrated asym", "a", { ...INT4_G32, asym: true, method: "gptq" });
});

test("stories260K int4-wo g32: calibrated int4 below round-to-nearest on the golden text and on the mean over two more sampled texts", (t) => {
  const dir = fixture(t, "models/stories260K");
  const golden = goldenText(t);
  if (!dir || !golden) return;
  const ckpt = openCheckpoint(dir);
  try {
    const { evals, calib } = samples(ckpt, STORIES_PROMPT, [11, 13]);
    const texts = [golden, ...evals];
    const fp32 = ppls(ckpt, "m-fp32", texts, calib);
    const rtn = ppls(ckpt, "m-rtn", texts, calib, INT4_G32).map((v, i) => rise(v, fp32[i]));
    const gptq = ppls(ckpt, "m-gptq", texts, calib, { ...INT4_G32, method: "gptq" }).map((v, i) => rise(v, fp32[i]));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    t.diagnostic(`golden: rtn ${pct(rtn[0])}, calibrated ${pct(gptq[0])}; sampled seeds 11, 13: rtn ${rtn.slice(1).map(pct).join(" ")} (mean ${pct(mean(rtn.slice(1)))}), calibrated ${gptq.slice(1).map(pct).join(" ")} (mean ${pct(mean(gptq.slice(1)))})`);
    assert.ok(gptq[0] < rtn[0], `golden: gptq ${pct(gptq[0])} vs rtn ${pct(rtn[0])}`);
    assert.ok(mean(gptq.slice(1)) < 0.75 * mean(rtn.slice(1)), `sampled mean: gptq ${pct(mean(gptq.slice(1)))} vs rtn ${pct(mean(rtn.slice(1)))}`);
  } finally {
    ckpt.close();
  }
});

test("int4-wo g32 gate on a random-weight model with every dim a multiple of 128: calibrated int4 within 5% of fp32", (t) => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 256, numHeads: 2, numKvHeads: 1, intermediateSize: 384, vocabSize: 512 }); // headDim 128
  const ckpt = syntheticCheckpoint(config, 11);
  const { evals, calib } = samples(ckpt, [1, 100, 200, 300], [7], 256); // one calibration window: this model is the slow one to calibrate
  const [fp32] = ppls(ckpt, "r-fp32", evals, calib);
  const [q] = ppls(ckpt, "r-gptq-g32", evals, calib, { ...INT4_G32, method: "gptq" });
  t.diagnostic(`random 256/128 int4-wo g32 calibrated: fp32 ${fp32.toFixed(4)}, gptq ${q.toFixed(4)} (${pct(rise(q, fp32))})`);
  assert.ok(rise(q, fp32) <= GATE, `${pct(rise(q, fp32))}`);
  assert.notEqual(q, fp32, "an int4 engine that changes nothing is not quantizing");
});

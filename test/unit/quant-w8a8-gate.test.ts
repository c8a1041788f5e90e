/**
 * The accuracy gate of W8A8 SmoothQuant (issue 7): perplexity at most 3% above FP32 over a
 * text sampled from the FP32 model itself, calibrated on another sampled text (other seed).
 * On stories260K (also int8-wo and a second alpha, for the figures) and on a random-weight
 * model whose dims all divide by 128. Engines are built as `llmrt build` builds them.
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
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import type { QuantOptions } from "../../src/quant/options.js";
import { fixture } from "../helpers/fixtures.js";
import { sampleText } from "../../src/eval/sample-text.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-w8a8-gate-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const WINDOWS = { ctx: 128, stride: 64 };
const OPTS = { maxBatchTokens: 128, maxLogitRows: 128, maxSeqs: 1, maxSeqLen: 320 };

function ppl(ckpt: Checkpoint, name: string, text: number[], calib: number[], quant?: Partial<QuantOptions>): number {
  const dir = join(tmp, name);
  const m = buildEngineDir(ckpt, dir, { ...OPTS, ...(quant ? { quant: quant as QuantOptions } : {}) }, { calibration: { tokens: calib, source: "sampled text" } });
  if (quant?.scheme === "w8a8") assert.ok(m.weights.tensors.some((e) => e.dtype === "w8a8"), "no w8a8 tensor in the engine");
  const e = Engine.load(dir);
  try {
    return perplexity(e, text, WINDOWS).perplexity;
  } finally {
    e.close();
  }
}

/** Eval text (seed 7) and calibration text (seed 3, 2 windows of 256), both sampled from the fp32 model. */
function texts(ckpt: Checkpoint, prompt: number[]): { text: number[]; calib: number[] } {
  const e = Engine.fromCheckpoint(ckpt, { maxSeqLen: 520, maxBatchTokens: 520, blockSize: 16 });
  try {
    return { text: sampleText(e, prompt, 300 - prompt.length, 7), calib: sampleText(e, prompt, 512 - prompt.length, 3) };
  } finally {
    e.close();
  }
}

function gate(t: { diagnostic(m: string): void }, name: string, fp32: number, w8a8: number): void {
  const rise = w8a8 / fp32 - 1;
  t.diagnostic(`${name}: fp32 ${fp32.toFixed(4)}, w8a8 ${w8a8.toFixed(4)} (${(100 * rise).toFixed(3)}%)`);
  assert.ok(rise <= 0.03, `${name}: w8a8 perplexity ${w8a8} is ${(100 * rise).toFixed(2)}% above fp32 ${fp32}`);
  assert.notEqual(w8a8, fp32, "a w8a8 engine that changes nothing is not quantizing");
}

test("W8A8 gate on stories260K: perplexity within 3% of fp32 (alpha 0.5); int8-wo and alpha 0.8 for comparison", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const { text, calib } = texts(ckpt, [1, 403, 407, 261, 378]); // "Once upon a time"
    const fp32 = ppl(ckpt, "s-fp32", text, calib);
    const int8wo = ppl(ckpt, "s-int8wo", text, calib, { scheme: "int8-wo" });
    const a5 = ppl(ckpt, "s-w8a8-05", text, calib, { scheme: "w8a8", smoothAlpha: 0.5 });
    const a8 = ppl(ckpt, "s-w8a8-08", text, calib, { scheme: "w8a8", smoothAlpha: 0.8 });
    const a0 = ppl(ckpt, "s-w8a8-00", text, calib, { scheme: "w8a8", smoothAlpha: 0 });
    t.diagnostic(`stories260K perplexity over ${text.length} sampled tokens: fp32 ${fp32.toFixed(4)}, int8-wo ${int8wo.toFixed(4)}, w8a8 alpha 0.5 ${a5.toFixed(4)}, alpha 0.8 ${a8.toFixed(4)}, alpha 0 ${a0.toFixed(4)}`);
    gate(t, "stories260K alpha 0.5", fp32, a5);
    assert.notEqual(a5, int8wo, "w8a8 must quantize the activations too, not only the weights");
  } finally {
    ckpt.close();
  }
});

test("W8A8 gate on a random-weight model with every dim a multiple of 128: within 3% of fp32", (t) => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 256, numHeads: 2, numKvHeads: 1, intermediateSize: 384, vocabSize: 512 }); // headDim 128
  const ckpt = syntheticCheckpoint(config, 11);
  const { text, calib } = texts(ckpt, [1, 100, 200, 300]);
  gate(t, "random 256/128 alpha 0.5", ppl(ckpt, "r-fp32", text, calib), ppl(ckpt, "r-w8a8", text, calib, { scheme: "w8a8" }));
});

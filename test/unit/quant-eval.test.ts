/**
 * Quantized engines end to end on the reference target: stories260K built fp32 / int8-wo /
 * int4-wo (g32), greedy output against the llama2.c goldens, perplexity per format and
 * compare (agreement 1 / KL 0 against itself); a GGUF with Q8_0 / Q4_0 tensors keeps them
 * packed and runs as its dequantized reading does.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { compareModels, perplexity } from "../../src/eval/metrics.js";
import { forEachPrediction, planWindows } from "../../src/eval/windows.js";
import { readManifest } from "../../src/engine/format.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../helpers/golden.js";
import { variantCheckpoint } from "./graph-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-quant-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const OPTS = { maxBatchTokens: 256, maxLogitRows: 256, maxSeqs: 1, maxSeqLen: 512 };

function greedy(e: Engine, prompt: number[], n: number): number[] {
  // greedy by re-prefilling the whole sequence each token: short outputs, no scheduler needed
  const out: number[] = [];
  const toks = [...prompt];
  for (let i = 0; i < n; i++) {
    let last: Float32Array | null = null;
    lastRow(e, toks, (row) => (last = row));
    const row = last! as Float32Array;
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
    out.push(best);
    toks.push(best);
  }
  return out;
}

function lastRow(e: Engine, toks: number[], onLast: (row: Float32Array) => void): void {
  // one window over all tokens; the last row predicts the next token
  forEachPrediction(e, [...toks, 0], toks.length + 1, toks.length + 1, (row, _t, pos) => pos === toks.length && onLast(row.slice()));
}

test("windows: every target scored once, left context up to ctx - stride", () => {
  for (const [n, ctx, stride] of [[10, 4, 2], [7, 7, 7], [100, 16, 5], [3, 8, 4]]) {
    const seen: number[] = [];
    for (const w of planWindows(n, ctx, stride)) for (let p = w.firstTarget; p < w.end; p++) seen.push(p);
    assert.deepEqual(seen, Array.from({ length: n - 1 }, (_, i) => i + 1), `${n} ${ctx} ${stride}`);
  }
});

test("stories260K: int8-wo / int4-wo engines vs fp32: goldens, perplexity, compare", (t) => {
  const model = fixture(t, "models/stories260K");
  const goldens = fixtures(t, ...STORIES_PROMPTS.slice(0, 3).map((p) => `golden/stories260K.llama2c.${p}.json`));
  if (!model || !goldens) return;
  const ckpt = openCheckpoint(model);
  const dirs: Record<string, string> = {};
  try {
    for (const [name, quant] of [["fp32", undefined], ["int8-wo", { scheme: "int8-wo" as const }], ["int4-wo g32", { scheme: "int4-wo" as const, groupSize: 32 }]] as const) {
      dirs[name] = join(tmp, name.replace(/ /g, "-"));
      const m = buildEngineDir(ckpt, dirs[name], { ...OPTS, ...(quant ? { quant } : {}) });
      t.diagnostic(`${name}: weights ${JSON.stringify(m.report.weightBytes)}${m.report.packed ? `; ${m.report.packed}` : ""}`);
      if (quant?.scheme === "int4-wo") assert.match(m.report.packed!, /172 cols -> last group 12/);
    }
  } finally {
    ckpt.close();
  }
  const engines = Object.fromEntries(Object.entries(dirs).map(([k, d]) => [k, Engine.load(d)]));
  assert.equal(readManifest(dirs["int8-wo"]).version, 3);

  // greedy int8 vs the goldens (first 24 tokens of three prompts: the reference backend is slow)
  for (const g of goldens.map(readGolden)) {
    const want = g.output_token_ids.slice(0, 24);
    const got = greedy(engines["int8-wo"], g.prompt_token_ids, want.length);
    const agree = got.findIndex((v, i) => v !== want[i]);
    t.diagnostic(`int8-wo "${g.prompt}": ${agree < 0 ? "all" : agree} of ${want.length} tokens match the golden`);
    assert.deepEqual(got, want);
  }

  const text = readGolden(goldens[0]);
  const tokens = [...text.prompt_token_ids, ...text.output_token_ids];
  const o = { ctx: 128, stride: 64 };
  const ppl = Object.fromEntries(Object.entries(engines).map(([k, e]) => [k, perplexity(e, tokens, o).perplexity]));
  t.diagnostic(`perplexity over ${tokens.length} tokens: ${Object.entries(ppl).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ")}`);
  assert.ok(ppl["int8-wo"] <= ppl.fp32 * 1.01, `int8-wo ppl ${ppl["int8-wo"]} vs fp32 ${ppl.fp32}`);
  assert.ok(ppl["int4-wo g32"] <= ppl.fp32 * 1.25, `int4-wo ppl ${ppl["int4-wo g32"]}`);

  const self = compareModels(engines.fp32, engines.fp32, tokens, o);
  assert.equal(self.top1Agreement, 1);
  assert.equal(self.meanKl, 0);
  const q4 = compareModels(engines.fp32, engines["int4-wo g32"], tokens, o);
  t.diagnostic(`int4-wo g32 vs fp32: top-1 ${q4.top1Agreement.toFixed(3)}, mean KL ${q4.meanKl.toExponential(2)}, max |logit diff| ${q4.maxLogitDiff.toFixed(3)}`);
  assert.ok(q4.top1Agreement > 0.7 && q4.meanKl < 0.2);
});

test("GGUF Q8_0 / Q4_0: tensors stay packed in the engine and run as their dequantized reading", (t) => {
  const src = variantCheckpoint({ hiddenSize: 64, intermediateSize: 128, numKvHeads: 2, vocabSize: 300 });
  for (const dtype of ["q8_0", "q4_0"] as const) {
    const file = join(tmp, `m-${dtype}.gguf`);
    writeModelGguf(file, src.config, src, { dtype });
    const ckpt = openCheckpoint(file);
    try {
      const m = buildEngineDir(ckpt, join(tmp, `g-${dtype}`), { ...OPTS, maxSeqLen: 64 });
      const want = dtype === "q8_0" ? "int8" : "int4";
      const packed = m.weights.tensors.filter((e) => e.dtype === want);
      t.diagnostic(`${dtype}: ${packed.length} tensors packed as ${want}; ${m.report.packed}`);
      assert.ok(packed.length >= 4 * src.config.numLayers, `${packed.length} packed`);
      assert.match(m.report.packed!, new RegExp(`gguf ${want} g32`));
      const packedEngine = Engine.load(join(tmp, `g-${dtype}`));
      const dense = Engine.fromCheckpoint(ckpt, { maxSeqLen: 64, maxBatchTokens: 64 }); // readF32 dequantizes
      const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % 300);
      const r = compareModels(dense, packedEngine, tokens, { ctx: 40, stride: 40 });
      t.diagnostic(`${dtype}: max |logit diff| vs dequantized reading ${r.maxLogitDiff.toExponential(2)}`);
      assert.ok(r.maxLogitDiff < 1e-4, `${r.maxLogitDiff}`);
      // the cpu and cuda targets read int8 / int4 blocks too: no --quant needed to keep them (cuda
      // decides at bind which layouts its kernels take: test/unit/cuda-packed.test.ts)
      const cpu = buildEngineDir(ckpt, join(tmp, `g-${dtype}-cpu`), { ...OPTS, maxSeqLen: 64, target: "cpu" });
      assert.equal(cpu.weights.tensors.filter((e) => e.dtype === want).length, packed.length);
      const cuda = buildEngineDir(ckpt, join(tmp, `g-${dtype}-cuda`), { ...OPTS, maxSeqLen: 64, target: "cuda" }, { files: new Map() });
      assert.equal(cuda.weights.tensors.filter((e) => e.dtype === want).length, packed.length);
    } finally {
      ckpt.close();
    }
  }
});

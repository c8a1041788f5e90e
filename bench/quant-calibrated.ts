/**
 * Calibrated (GPTQ) against round-to-nearest int4-wo on stories260K, reference target:
 * perplexity over a text sampled from the FP32 model (seed 7, 300 tokens) and over the
 * llama2.c goldens (prompt + output of every STORIES_PROMPTS golden, concatenated), windows
 * ctx 128 / stride 64; GPTQ calibrated on another FP32 sample (seed 3, 512 tokens: 2
 * windows of 256). The same texts as test/unit/quant-gptq-gate.test.ts, plus the mean over
 * more FP32 samples (300 tokens each, seeds --seeds). GPTQ with and without the
 * activation-aware scale search (awqScales).
 *   npx tsx bench/quant-calibrated.ts [--groups 32,64,128] [--asym] [--int8] [--seeds 11,13,17,19,23,29,31,37]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { Checkpoint } from "../src/checkpoint/types.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { perplexity } from "../src/eval/metrics.js";
import { sampleText } from "../src/eval/sample-text.js";
import type { QuantOptions } from "../src/quant/options.js";
import { sharedPath } from "../test/helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../test/helpers/golden.js";
import { machineLine } from "./machine.js";

const arg = (name: string) => process.argv.indexOf(name);
const groups = arg("--groups") > 0 ? process.argv[arg("--groups") + 1].split(",").map(Number) : [32, 64, 128];
const asym = arg("--asym") > 0;
const seeds = (arg("--seeds") > 0 ? process.argv[arg("--seeds") + 1] : "11,13,17,19,23,29,31,37").split(",").map(Number);
console.log(`command: npx tsx bench/quant-calibrated.ts ${process.argv.slice(2).join(" ")}`.trimEnd());
console.log(`machine: ${machineLine()}`);

const WINDOWS = { ctx: 128, stride: 64 };
const OPTS = { maxBatchTokens: 128, maxLogitRows: 128, maxSeqs: 1, maxSeqLen: 320 };
const root = mkdtempSync(join(tmpdir(), "llmrt-bench-gptq-"));
const ckpt: Checkpoint = openCheckpoint(sharedPath("models/stories260K"));
try {
  const fp = Engine.fromCheckpoint(ckpt, { maxSeqLen: 520, maxBatchTokens: 520, blockSize: 16 });
  const prompt = [1, 403, 407, 261, 378]; // "Once upon a time"
  const sampled = sampleText(fp, prompt, 300 - prompt.length, 7);
  const calib = sampleText(fp, prompt, 512 - prompt.length, 3);
  const more = seeds.map((s) => sampleText(fp, prompt, 300 - prompt.length, s));
  fp.close();
  const golden = STORIES_PROMPTS.flatMap((p) => {
    const g = readGolden(sharedPath(`golden/stories260K.llama2c.${p}.json`));
    return [...g.prompt_token_ids, ...g.output_token_ids];
  });
  const texts: Record<string, number[]> = { sampled, golden, ...Object.fromEntries(more.map((t, i) => [`s${seeds[i]}`, t])) };

  const measure = (name: string, quant?: Partial<QuantOptions>): Record<string, number> => {
    const dir = join(root, name.replace(/\W+/g, "-"));
    const t0 = performance.now();
    const m = buildEngineDir(ckpt, dir, { ...OPTS, ...(quant ? { quant: quant as QuantOptions } : {}) }, { calibration: { tokens: calib, source: "seed-3 sample" } });
    const buildS = (performance.now() - t0) / 1000;
    if (m.report.packed) console.log(`  ${name}: ${m.report.packed} (built in ${buildS.toFixed(1)} s)`);
    const e = Engine.load(dir);
    try {
      return Object.fromEntries(Object.entries(texts).map(([k, t]) => [k, perplexity(e, t, WINDOWS).perplexity]));
    } finally {
      e.close();
    }
  };
  const fp32 = measure("fp32");
  const rows: string[] = [`| fp32 | ${fp32.sampled.toFixed(4)} | - | ${fp32.golden.toFixed(4)} | - | - | - |`];
  const row = (name: string, r: Record<string, number>) => {
    const rises = seeds.map((s) => r[`s${s}`] / fp32[`s${s}`] - 1);
    const mean = rises.reduce((a, b) => a + b, 0) / rises.length;
    return `| ${name} | ${r.sampled.toFixed(4)} | ${pct(r.sampled / fp32.sampled - 1)} | ${r.golden.toFixed(4)} | ${pct(r.golden / fp32.golden - 1)} | ${pct(mean)} | ${pct(Math.max(...rises))} |`;
  };
  const pct = (v: number) => `${v >= 0 ? "+" : ""}${(100 * v).toFixed(2)}%`;
  if (arg("--int8") > 0) {
    rows.push(row("int8-wo rtn", measure("int8 rtn", { scheme: "int8-wo" })));
    rows.push(row("int8-wo awq+gptq", measure("int8 gptq", { scheme: "int8-wo", method: "gptq" })));
  }
  for (const g of groups) {
    const base = { scheme: "int4-wo" as const, groupSize: g, asym };
    const label = `int4-wo g${g}${asym ? " asym" : ""}`;
    rows.push(row(`${label} rtn`, measure(`${label} rtn`, base)));
    rows.push(row(`${label} gptq`, measure(`${label} gptq`, { ...base, method: "gptq", awqScales: false })));
    rows.push(row(`${label} awq+gptq`, measure(`${label} awq gptq`, { ...base, method: "gptq" })));
  }
  console.log(`\nperplexity: sampled text ${sampled.length} tokens (seed 7), golden text ${golden.length} tokens, ${seeds.length} more samples of 300 (seeds ${seeds.join(", ")}); GPTQ calibrated on ${calib.length} tokens (seed 3)`);
  console.log(`| format | ppl sampled (seed 7) | vs fp32 | ppl golden | vs fp32 | mean vs fp32, ${seeds.length} more samples | worst of them |\n| --- | --- | --- | --- | --- | --- | --- |`);
  for (const r of rows) console.log(r);
} finally {
  ckpt.close();
  rmSync(root, { recursive: true, force: true });
}

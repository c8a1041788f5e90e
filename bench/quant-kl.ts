/**
 * One quantized stories260K build against FP32, reference target: perplexity on the int4
 * gate's texts (seed-7 sample, llama2.c goldens), mean and worst perplexity rise over more
 * FP32 samples (300 tokens each), and the mean KL(fp32 || quantized) of the next-token
 * distributions over all of those texts. The KL is the steadier measure: a perplexity rise
 * on a text sampled from the FP32 model is a one-token-per-position estimate of the same
 * KL. Calibration (when the options ask for GPTQ): the seed-3 sample of 512 tokens, as
 * test/unit/quant-gptq-gate.test.ts; `--calib-seeds` adds 512-token samples.
 *   npx tsx bench/quant-kl.ts [--quant '{"scheme":"int4-wo","groupSize":32,"method":"gptq"}'] [--seeds 101,103,..] [--calib-seeds 5,6,8]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { compareModels, perplexity } from "../src/eval/metrics.js";
import { sampleText } from "../src/eval/sample-text.js";
import type { QuantOptions } from "../src/quant/options.js";
import { sharedPath } from "../test/helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../test/helpers/golden.js";
import { machineLine } from "./machine.js";

const arg = (name: string, fallback: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const quant = JSON.parse(arg("--quant", '{"scheme":"int4-wo","groupSize":32,"method":"gptq"}')) as Partial<QuantOptions>;
const seeds = arg("--seeds", "11,13,17,19,23,29,31,37").split(",").map(Number);
const calibSeeds = arg("--calib-seeds", "").split(",").filter(Boolean).map(Number);
console.log(`command: npx tsx bench/quant-kl.ts ${process.argv.slice(2).join(" ")}`.trimEnd());
console.log(`machine: ${machineLine()}`);

const WINDOWS = { ctx: 128, stride: 64 };
const OPTS = { maxBatchTokens: 128, maxLogitRows: 128, maxSeqs: 1, maxSeqLen: 320 };
const PROMPT = [1, 403, 407, 261, 378]; // "Once upon a time"
const root = mkdtempSync(join(tmpdir(), "llmrt-bench-kl-"));
const ckpt = openCheckpoint(sharedPath("models/stories260K"));
try {
  const fp = Engine.fromCheckpoint(ckpt, { maxSeqLen: 520, maxBatchTokens: 520, blockSize: 16 });
  const sample = (n: number, seed: number) => sampleText(fp, PROMPT, n - PROMPT.length, seed);
  const texts: Record<string, number[]> = { sampled: sample(300, 7) };
  texts.golden = STORIES_PROMPTS.flatMap((p) => {
    const g = readGolden(sharedPath(`golden/stories260K.llama2c.${p}.json`));
    return [...g.prompt_token_ids, ...g.output_token_ids];
  });
  for (const s of seeds) texts[`s${s}`] = sample(300, s);
  const calib = [3, ...calibSeeds].flatMap((s) => sample(512, s));
  fp.close();

  const build = (name: string, q?: Partial<QuantOptions>) => {
    const dir = join(root, name);
    const t0 = performance.now();
    buildEngineDir(ckpt, dir, { ...OPTS, ...(q ? { quant: q as QuantOptions } : {}) }, { calibration: { tokens: calib, source: "sampled text" }, onLog: (l) => l.includes("tuned") && console.log(l) });
    return { dir, seconds: (performance.now() - t0) / 1000 };
  };
  const ref = Engine.load(build("fp32").dir);
  const built = build("q", quant);
  const e = Engine.load(built.dir);
  const rise: Record<string, number> = {};
  let kl = 0;
  for (const [name, t] of Object.entries(texts)) {
    rise[name] = perplexity(e, t, WINDOWS).perplexity / perplexity(ref, t, WINDOWS).perplexity - 1;
    kl += compareModels(ref, e, t, WINDOWS).meanKl / Object.keys(texts).length;
  }
  e.close();
  ref.close();
  const more = seeds.map((s) => rise[`s${s}`]);
  const pct = (v: number) => `${v >= 0 ? "+" : ""}${(100 * v).toFixed(2)}%`;
  console.log(`${JSON.stringify(quant)}${calibSeeds.length ? ` (calibration: seeds 3,${calibSeeds.join(",")})` : ""}: sampled (seed 7) ${pct(rise.sampled)}, golden ${pct(rise.golden)}; ${seeds.length} more samples mean ${pct(more.reduce((a, b) => a + b, 0) / more.length)}, worst ${pct(Math.max(...more))}; mean KL over ${Object.keys(texts).length} texts ${(1e3 * kl).toFixed(1)}e-3; built in ${built.seconds.toFixed(1)} s`);
} finally {
  ckpt.close();
  rmSync(root, { recursive: true, force: true });
}

/** llmrt build --quant auto on stories260K: the table, the budget, the pick, the flags. Speeds vary run to run, so only budget facts are asserted. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { buildAutoEngineDir, type AutoResult } from "../../src/engine/auto-precision.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { chunkedPerplexity } from "../../src/eval/chunked-ppl.js";
import { perplexity } from "../../src/eval/metrics.js";
import { sampleText } from "../../src/eval/sample-text.js";
import { OptionError } from "../../src/errors.js";
import { autoCandidates, parseMaxPplIncrease } from "../../src/quant/auto.js";
import { fixture } from "../helpers/fixtures.js";
import { runBuild as build } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-quant-auto-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const COLUMNS = /candidate +weights +ppl +increase +ms\/token +within budget/;

/** The pick is the fastest of the candidates within budget, by the table's own numbers. */
function assertBudgetFacts(r: AutoResult, budget: number): void {
  const chosen = r.results[r.chosen];
  assert.ok(chosen.withinBudget && chosen.increase! <= budget, `chose ${chosen.name} at +${chosen.increase}`);
  const within = r.results.filter((x) => x.withinBudget);
  assert.equal(chosen.msPerToken, Math.min(...within.map((x) => x.msPerToken!)));
  for (const x of r.results) if (x.increase !== undefined) assert.equal(x.withinBudget, x.increase <= budget, x.name);
  assert.equal(r.results[0].name, "fp32");
  assert.equal(r.results[0].increase, 0);
}

test("--quant auto, 50% budget on the cpu target: every candidate measured, the pick is the fastest within budget and re-measures within it", async (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const fp32 = Engine.fromCheckpoint(ckpt, { maxSeqLen: 256, maxBatchTokens: 256 });
    const tokens = sampleText(fp32, [1], 250, 11);
    fp32.close();
    const lines: string[] = [];
    const out = join(tmp, "cpu-50");
    const r = await buildAutoEngineDir(ckpt, out, { target: "cpu" }, { maxPplIncrease: 0.5, calibration: { tokens, source: "test text" }, samplePrompt: [1], onLog: (l) => lines.push(l) });
    const names = autoCandidates("cpu", true).map((c) => c.name);
    assert.deepEqual(r.results.map((x) => x.name), names);
    assert.ok(names.includes("int8-wo") && names.includes("int4-wo g32") && names.includes("w8a8")); // the cpu target runs w8a8 too
    for (const x of r.results) assert.equal(x.error, undefined, `${x.name}: ${x.error}`);
    // the int formats really quantize (their perplexity moves) and the generous budget admits them
    assert.ok(r.results.some((x) => x.name.startsWith("int4") && x.increase !== 0));
    assert.ok(r.results.every((x) => x.withinBudget), r.table.join("\n"));
    assertBudgetFacts(r, 0.5);
    const log = lines.join("\n");
    assert.match(log, COLUMNS);
    for (const n of names) assert.match(log, new RegExp(`^ +\\*? *${n} +[\\d.]+ [KM]B +[\\d.]+ +[+-][\\d.]+% +[\\d.]+ +yes$`, "m"));
    assert.match(log, /evaluation text: 251 tokens of test text/);
    // the output is the chosen candidate, and says so
    const m = readManifest(out) as ReturnType<typeof readManifest> & { autoPrecision?: { chosen: string; table: unknown[] } };
    assert.equal(m.autoPrecision?.chosen, r.results[r.chosen].name);
    assert.equal(m.autoPrecision?.table.length, names.length);
    const e = Engine.load(out, { maxSeqs: 1 });
    try {
      const again = chunkedPerplexity(e, tokens, { ctx: 128, stride: 64, chunk: 16 }).perplexity;
      assert.ok(Math.abs(again / r.results[r.chosen].ppl! - 1) < 1e-6, `re-measured ${again} vs table ${r.results[r.chosen].ppl}`);
      assert.ok(again / r.results[0].ppl! - 1 <= 0.5);
    } finally {
      e.close();
    }
  } finally {
    ckpt.close();
  }
});

test("--quant auto, 0% budget (sampled text, reference target): the pick loses no perplexity against fp32", async (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const lines: string[] = [];
    const r = await buildAutoEngineDir(ckpt, join(tmp, "ref-0"), {}, { maxPplIncrease: 0, samplePrompt: [1], onLog: (l) => lines.push(l) });
    assertBudgetFacts(r, 0);
    assert.ok(r.results[r.chosen].increase! <= 0);
    assert.ok(r.results.some((x) => !x.withinBudget), "int4 should miss a 0% budget on stories260K");
    assert.match(lines.join("\n"), /sampled from the fp32 model \(seed 1/);
  } finally {
    ckpt.close();
  }
});

test("chunked perplexity matches one prefill per window", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const out = join(tmp, "wide");
    buildEngineDir(ckpt, out, { maxBatchTokens: 128, maxLogitRows: 128, maxSeqs: 1, maxSeqLen: 256 });
    const e = Engine.load(out);
    const tokens = sampleText(e, [1], 200, 5);
    const whole = perplexity(e, tokens, { ctx: 128, stride: 64 });
    const chunked = chunkedPerplexity(e, tokens, { ctx: 128, stride: 64, chunk: 16 });
    e.close();
    assert.equal(chunked.tokens, whole.tokens);
    assert.ok(Math.abs(chunked.perplexity / whole.perplexity - 1) < 1e-4, `${chunked.perplexity} vs ${whole.perplexity}`);
  } finally {
    ckpt.close();
  }
});

test("--max-ppl-increase: percentages parse; bad values and use without --quant auto are OptionErrors", () => {
  assert.equal(parseMaxPplIncrease("1%", "auto"), 0.01);
  assert.equal(parseMaxPplIncrease("2.5", "auto"), 0.025);
  assert.equal(parseMaxPplIncrease(undefined, "auto"), 0.01);
  for (const [v, q, re] of [["-1", "auto", /must be >= 0%/], ["abc", "auto", /wants a percentage/], ["1%", undefined, /applies to --quant auto only/], ["1%", "int8-wo", /applies to --quant auto only/]] as const) {
    assert.throws(() => parseMaxPplIncrease(v, q), (e: unknown) => e instanceof OptionError && e.option === "--max-ppl-increase" && re.test(e.message), `${v} ${q}`);
  }
});

test("llmrt build --quant auto end to end: the table in the log, the chosen engine in the dir; bad flags refused before any work", async (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const out = join(tmp, "cli");
  const log = await build("--model", dir, "-o", out, "--quant", "auto", "--max-ppl-increase", "1%");
  assert.match(log, COLUMNS);
  assert.match(log, /llmrt: auto: chose \S+/);
  assert.match(log, /built .* --quant auto chose/);
  const m = readManifest(out) as ReturnType<typeof readManifest> & { autoPrecision?: { chosen: string; maxPplIncrease: number } };
  assert.equal(m.autoPrecision?.maxPplIncrease, 0.01);
  const e = Engine.load(out);
  e.close();
  for (const [args, option] of [
    [["--max-ppl-increase", "-1"], "--max-ppl-increase"],
    [["--max-ppl-increase", "abc"], "--max-ppl-increase"],
    [["--group-size", "64"], "--group-size"],
    [["--dtype", "bf16"], "--dtype"],
    [["--smooth-alpha", "0.5"], "--smooth-alpha"],
  ] as const) {
    await assert.rejects(build("--model", dir, "-o", join(tmp, "bad"), "--quant", "auto", ...args), (e: unknown) => e instanceof OptionError && e.option === option, args.join(" "));
  }
  await assert.rejects(build("--model", dir, "-o", join(tmp, "bad"), "--quant", "int8-wo", "--max-ppl-increase", "1"), (e: unknown) => e instanceof OptionError && e.option === "--max-ppl-increase");
});

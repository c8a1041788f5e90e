/**
 * Per-tensor precision overrides and --quant auto's per-layer-group search (issue 7): the
 * overrides round-trip through build / load / inspect, a mixed engine runs what the
 * reference computes for the same per-tensor rounding (reference and cpu targets), the
 * greedy's arithmetic, and on stories260K a mix that meets a budget its uniform base misses.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WeightMap } from "../../src/backends/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { measureSensitivity, searchMixes } from "../../src/engine/auto-mix.js";
import { buildEngineDir, planEngine } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { matmulOnlyWeights } from "../../src/engine/packed-weights.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { chunkedPerplexity } from "../../src/eval/chunked-ppl.js";
import { sampleText } from "../../src/eval/sample-text.js";
import { inspect } from "../../src/cli/inspect.js";
import { OptionError } from "../../src/errors.js";
import { describeMix, promote, type MixProblem, type Rung } from "../../src/quant/auto-mix.js";
import { formatAutoTable, type Candidate, type CandidateResult } from "../../src/quant/auto.js";
import { packedFormatFor, resolveQuant, type QuantOptions } from "../../src/quant/options.js";
import { quantFor } from "../../src/quant/overrides.js";
import { dequantize } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { fixture } from "../helpers/fixtures.js";
import { calibratedTargets } from "../../src/engine/gptq-build.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-quant-mix-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const LIMITS = { maxSeqs: 1, maxSeqLen: 64, maxBatchTokens: 16, maxLogitRows: 16 };
const MIX: Partial<QuantOptions> = { scheme: "int4-wo", groupSize: 32, overrides: { "blk.4.*": { scheme: "int8-wo" }, "blk.0.ffn_down.weight": "fp32", "blk.1.attn_qkv.weight": { scheme: "int4-wo", groupSize: 64, asym: true } } };
const PROMPT = [1, 403, 261, 378, 285, 264, 271, 402, 261, 318, 289, 266, 299, 42, 291, 262];

function prefillLogits(e: Engine, tokens: number[]): Float32Array {
  const seq = new Sequence(0, tokens);
  new BlockPool(e.kv.numBlocks, e.kv.blockSize).reserve(seq, tokens.length);
  const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], e.kv.blockSize);
  step.logitRows = Int32Array.from(tokens.keys());
  return e.forward(step).slice();
}

/** The reference backend on fp32 weights with each matmul weight rounded to nearest on its own format: what a mixed engine must compute. */
function referenceOfMix(ckpt: Checkpoint, quant: QuantOptions): Engine {
  const options = resolveBuildOptions(ckpt.config, LIMITS);
  const plan = planEngine(ckpt.config, options);
  const mm = matmulOnlyWeights(plan.graph);
  const weights: WeightMap = new Map();
  for (const [n, d] of plan.graph.tensors) {
    if (d.kind !== "weight") continue;
    const w = materializeWeight(plan.graph, n, ckpt);
    const q = mm.has(n) ? quantFor(quant, n) : undefined;
    if (!q) weights.set(n, w);
    else {
      const { dtype, layout } = packedFormatFor(q, d.shape[1]);
      weights.set(n, dequantize(quantize(w, d.shape[0], d.shape[1], dtype, layout)));
    }
  }
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 4, blockSize: 16, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim, dtype: "f32" as const };
  return new Engine(ckpt.config, plan.graph, new ReferenceBackend().bind(plan.graph, weights, kv, plan.memory), LIMITS.maxSeqLen, { ...LIMITS, origin: "test" });
}

test("quant.overrides: stored in engine.json, each tensor in its own format, shown by inspect, and loaded back", async (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const out = join(tmp, "mix-ref");
    buildEngineDir(ckpt, out, { ...LIMITS, quant: MIX as QuantOptions });
    const m = readManifest(out);
    assert.deepEqual(m.build.quant?.overrides, { "blk.4.*": { scheme: "int8-wo" }, "blk.0.ffn_down.weight": "fp32", "blk.1.attn_qkv.weight": { scheme: "int4-wo", groupSize: 64, asym: true } });
    const byName = new Map(m.weights.tensors.map((e) => [e.name, e]));
    for (const n of ["blk.4.attn_qkv.weight", "blk.4.ffn_down.weight"]) assert.equal(byName.get(n)?.dtype, "int8", n);
    assert.equal(byName.get("blk.0.ffn_down.weight")?.dtype, "f32");
    assert.deepEqual([byName.get("blk.1.attn_qkv.weight")?.dtype, byName.get("blk.1.attn_qkv.weight")?.quant?.groupSize, byName.get("blk.1.attn_qkv.weight")?.quant?.asym], ["int4", 64, true]);
    assert.deepEqual([byName.get("blk.2.ffn_gate_up.weight")?.dtype, byName.get("blk.2.ffn_gate_up.weight")?.quant?.groupSize], ["int4", 32]);
    const shown = await inspect(out, { dtype: "fp32" });
    assert.match(shown, /^quant +int4 g32; overrides blk\.4\.\*: int8, blk\.0\.ffn_down\.weight: fp32, blk\.1\.attn_qkv\.weight: int4 g64 asym$/m);
    Engine.load(out).close();
  } finally {
    ckpt.close();
  }
});

test("a mixed engine computes the reference's logits for the same per-tensor rounding, on the reference and cpu targets", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const quant = resolveQuant(MIX)!;
    const want = referenceOfMix(ckpt, quant);
    const expected = prefillLogits(want, PROMPT);
    want.close();
    for (const target of ["reference", "cpu"]) {
      const out = join(tmp, `mix-logits-${target}`);
      buildEngineDir(ckpt, out, { ...LIMITS, target, quant });
      const e = Engine.load(out);
      const got = prefillLogits(e, PROMPT);
      e.close();
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - expected[i]));
      assert.ok(worst <= (target === "reference" ? 1e-4 : 2e-3), `${target}: max |logit difference| ${worst}`);
    }
    // and the mix differs from uniform int4 g32 (the overrides took effect)
    const uniform = referenceOfMix(ckpt, resolveQuant({ scheme: "int4-wo", groupSize: 32 })!);
    const u = prefillLogits(uniform, PROMPT);
    uniform.close();
    assert.ok(u.some((v, i) => Math.abs(v - expected[i]) > 1e-3));
  } finally {
    ckpt.close();
  }
});

test("quant.overrides: bad maps are OptionErrors naming quant.overrides", (t) => {
  const bad: [Partial<QuantOptions>, RegExp][] = [
    [{ overrides: { "blk.0.*": "fp32" } }, /needs a base --quant/],
    [{ scheme: "w8a8", overrides: { "blk.0.*": "fp32" } }, /no per-tensor overrides/],
    [{ scheme: "int4-wo", overrides: { "blk.0.*": { scheme: "w8a8" } } as never }, /whole model only/],
    [{ scheme: "int4-wo", overrides: { "blk.0.*": { scheme: "int4-wo", groupSize: 48 } } }, /48 is not supported/],
    [{ scheme: "int4-wo", overrides: { "blk.0.*": { scheme: "int8-wo", method: "gptq" } } as never }, /format only/],
    [{ scheme: "int4-wo", overrides: { "blk.0.*": "bf16" } as never }, /wants a format/],
  ];
  for (const [q, re] of bad) assert.throws(() => resolveQuant(q), (e: unknown) => e instanceof (OptionError as never) && /quant\.overrides|group-size/.test((e as OptionError).option) && re.test((e as Error).message), JSON.stringify(q));
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    assert.throws(() => buildEngineDir(ckpt, join(tmp, "typo"), { ...LIMITS, quant: { scheme: "int8-wo", overrides: { "blk.0.ffn_up.weight": "fp32" } } }), (e: unknown) => e instanceof OptionError && e.option === "quant.overrides" && /matches no linear-layer weight/.test(e.message));
  } finally {
    ckpt.close();
  }
});

test("greedy: promotes the most KL per bit first, gives back what still fits, and the mix reads compactly", () => {
  const rungs = [
    { label: "int4 g32", format: { scheme: "int4-wo" as const, groupSize: 32, asym: false }, bits: 5 },
    { label: "int8", format: { scheme: "int8-wo" as const }, bits: 8 },
    { label: "fp32", format: "fp32" as const, bits: 32 },
  ];
  // group 2 is 10x as sensitive; group 3 is large and mildly sensitive
  const p: MixProblem = { params: [100, 100, 100, 1000], rungs, sensitivity: [[1, 0.1, 0], [1, 0.1, 0], [10, 0.5, 0], [3, 0.2, 0]] };
  assert.deepEqual(promote(p, [0, 0, 0, 0], 15), [0, 0, 0, 0]); // within already
  assert.deepEqual(promote(p, [0, 0, 0, 0], 6), [0, 0, 1, 0]); // the outlier group first
  // to 3: groups 0 and 1 go to int8 before group 3 must too (3 -> 0.2); then they fit back at int4 (2.7 <= 3)
  assert.deepEqual(promote(p, [0, 0, 0, 0], 3), [0, 0, 1, 1]);
  assert.deepEqual(promote(p, [0, 0, 0, 0], 0), [2, 2, 2, 2]);
  const names = ["blk.0.attn_qkv.weight", "blk.0.ffn_down.weight", "blk.1.attn_qkv.weight", "blk.1.ffn_down.weight", "blk.2.attn_qkv.weight", "blk.2.ffn_down.weight", "output.weight"];
  assert.equal(describeMix(names, ["int4 g32", "int4 g32", "int4 g32", "int4 g32", "int8", "int4 g32", "int8"]), "blocks 0-1: int4 g32; block 2: int4 g32 except attn_qkv int8; lm_head: int8");
});

test("--quant auto's mix search on stories260K: a budget uniform int4 g32 misses, met by a mix with fewer bytes than uniform int8; the table lists it", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const fp32 = Engine.fromCheckpoint(ckpt, { maxSeqLen: 256, maxBatchTokens: 256 });
    const tokens = sampleText(fp32, [1], 127, 11);
    fp32.close();
    let n = 0;
    const tryBuild = (name: string, quant: QuantOptions | undefined): CandidateResult => {
      const out = join(tmp, `search-${n++}`);
      const m = buildEngineDir(ckpt, out, { maxSeqs: 1, maxSeqLen: 128, maxBatchTokens: 64, maxLogitRows: 64, quant });
      const e = Engine.load(out);
      const ppl = chunkedPerplexity(e, tokens, { ctx: 128, stride: 64, chunk: 64 }).perplexity;
      e.close();
      return { name, weightBytes: m.weights.bytes, ppl, msPerToken: 0, withinBudget: true };
    };
    const candidates: Candidate[] = [
      { name: "fp32", dtype: "fp32" },
      { name: "int8-wo", dtype: "fp32", quant: { scheme: "int8-wo" } },
      { name: "int4-wo g32", dtype: "fp32", quant: { scheme: "int4-wo", groupSize: 32, asym: false } },
    ];
    const rows = candidates.map((c) => tryBuild(c.name, c.quant));
    for (const r of rows) r.increase = r.ppl! / rows[0].ppl! - 1;
    const [, int8, int4] = rows;
    // the budget: a quarter of int4 g32's loss, which int8 (near lossless) meets
    const budget = int4.increase! / 4;
    assert.ok(int4.increase! > 0.01 && int8.increase! < budget, `int8 ${int8.increase}, int4 g32 ${int4.increase}`);
    for (const r of rows) r.withinBudget = r.increase! <= budget;
    const lines: string[] = [];
    const mixes = searchMixes({
      ckpt,
      tokens,
      budget,
      candidates,
      results: rows,
      tryBuild: (name, q) => {
        const r = tryBuild(name, q);
        r.increase = r.ppl! / rows[0].ppl! - 1;
        r.withinBudget = r.increase <= budget;
        return r;
      },
      log: (l) => lines.push(l),
    });
    const log = lines.join("\n");
    assert.ok(mixes.length >= 1, log);
    const within = mixes.filter((m) => m.withinBudget).sort((a, b) => a.weightBytes! - b.weightBytes!);
    assert.ok(within.length >= 1, `no mix within +${budget}\n${log}`);
    const last = within[0]; // the smallest mix within budget
    assert.ok(last.increase! <= budget);
    assert.ok(last.weightBytes! < int8.weightBytes!, `the mix (${last.weightBytes} B) should be smaller than uniform int8 (${int8.weightBytes} B)`);
    assert.match(last.mix!, /int4 g32/);
    assert.match(last.mix!, /int8|fp32/);
    assert.match(log, /bases int4-wo g32 \(\+[\d.]+%\) .*ladder int4 g32 < int8 < fp32; 20 layer groups/);
    assert.match(log, /sensitivity = KL/);
    const table = formatAutoTable([...rows, ...mixes], rows.length + mixes.indexOf(last), budget).join("\n");
    assert.match(table, new RegExp(`^\\* ${last.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} +[\\d.]+ KB +[\\d.]+ +[+-][\\d.]+% +[\\d.]+ +yes$`, "m"));
    assert.ok(table.includes(`  ${last.name}: ${last.mix}`), table);
  } finally {
    ckpt.close();
  }
});

/** stories260K with outliers in one weight: in every row, one value per 32-column group set to 6x the group's largest magnitude (alternating sign), so int4 g32 rounds the rest of each group coarsely. */
function withOutliers(ckpt: Checkpoint, name: string): Checkpoint {
  const read = (n: string): Float32Array => {
    const w = ckpt.readF32(n);
    if (n !== name) return w;
    const out = Float32Array.from(w);
    const [rows, cols] = ckpt.info(n).shape;
    for (let r = 0; r < rows; r++) {
      for (let c0 = 0; c0 < cols; c0 += 32) {
        const width = Math.min(32, cols - c0);
        let max = 0;
        for (let c = c0; c < c0 + width; c++) max = Math.max(max, Math.abs(out[r * cols + c]));
        out[r * cols + c0 + ((r * 7) % width)] = 6 * max * (r % 2 ? 1 : -1);
      }
    }
    return out;
  };
  return new Proxy(ckpt, { get: (t, p) => (p === "readF32" ? read : typeof Reflect.get(t, p) === "function" ? Reflect.get(t, p).bind(t) : Reflect.get(t, p)) });
}

test("sensitivity: a weight given outliers becomes the most sensitive group at int4, by far more than before, and int8 keeps it", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const base = openCheckpoint(dir);
  try {
    const SENSITIVE = "blk.1.ffn_down.weight";
    const rungs: Rung[] = [
      { label: "int4 g32", format: { scheme: "int4-wo", groupSize: 32, asym: false }, bits: 5 },
      { label: "int8", format: { scheme: "int8-wo" }, bits: 8 },
      { label: "fp32", format: "fp32", bits: 32 },
    ];
    const textOf = (c: Checkpoint) => {
      const e = Engine.fromCheckpoint(c, { maxSeqLen: 128, maxBatchTokens: 128 });
      const tokens = sampleText(e, [1], 63, 5);
      e.close();
      return tokens;
    };
    const before = measureSensitivity({ ckpt: base, tokens: textOf(base) }, [SENSITIVE], rungs).sensitivity[0][0];
    const ckpt = withOutliers(base, SENSITIVE);
    const names = [...calibratedTargets(planEngine(ckpt.config, resolveBuildOptions(ckpt.config, {})).graph, ckpt)];
    const { sensitivity } = measureSensitivity({ ckpt, tokens: textOf(ckpt) }, names, rungs);
    const g = names.indexOf(SENSITIVE);
    const atInt4 = sensitivity.map((row) => row[0]);
    const order = [...atInt4.keys()].sort((a, b) => atInt4[b] - atInt4[a]);
    assert.equal(names[order[0]], SENSITIVE, `most sensitive at int4: ${order.slice(0, 3).map((i) => `${names[i]} ${atInt4[i]}`).join(", ")}`);
    assert.ok(atInt4[g] > 10 * before, `with outliers ${atInt4[g]}, before ${before}`);
    assert.ok(sensitivity[g][1] < atInt4[g] / 20, `int8 ${sensitivity[g][1]} vs int4 ${atInt4[g]}`);
    for (const row of sensitivity) assert.equal(row[2], 0);
  } finally {
    base.close();
  }
});

/**
 * End-to-end scale tuning (src/quant/tune-scales.ts, `--tune-steps`): it lowers the
 * calibration KL to fp32, moves only the scales (integers, zero points, format and signs
 * kept), and `llmrt build` runs it, logs it, records it and refuses it where it does not
 * apply, and `llmrt inspect` says so. Its accuracy on stories260K is gated in quant-gptq-gate.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planEngine } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { OptionError } from "../../src/errors.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { prefillStep } from "../../src/quant/calibrate.js";
import { describeOverrides } from "../../src/quant/overrides.js";
import { dequantize, type PackedMatrix } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";
import { tuneScales } from "../../src/quant/tune-scales.js";
import { runBuild as build } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-tune-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test("tuneScales: round-to-nearest int4 (sym and asym) and int8 weights of a random model, the calibration KL falls, only the scales move", () => {
  const ckpt = syntheticCheckpoint(syntheticConfig({ numLayers: 2, hiddenSize: 48, numHeads: 4, numKvHeads: 2, intermediateSize: 40, vocabSize: 64 }), 9);
  const { graph: g } = planEngine(ckpt.config, resolveBuildOptions(ckpt.config, { maxBatchTokens: 64, maxLogitRows: 64, maxSeqLen: 64 }));
  const fp32 = new Map<string, Float32Array>();
  for (const [n, d] of g.tensors) if (d.kind === "weight") fp32.set(n, materializeWeight(g, n, ckpt));
  const packed = new Map<string, PackedMatrix>();
  const formats = [
    { dtype: "int4", layout: { groupSize: 16, asym: false, scale: "f32" } },
    { dtype: "int4", layout: { groupSize: 16, asym: true, scale: "f32" } },
    { dtype: "int8", layout: { groupSize: 48, asym: false, scale: "f32" } },
  ] as const;
  let i = 0;
  for (const op of g.ops) {
    if (op.op !== "matmul" || op.w === "token_embd.weight") continue;
    const [rows, cols] = (g.tensors.get(op.w) as { shape: number[] }).shape;
    const f = formats[i++ % formats.length];
    packed.set(op.w, quantize(fp32.get(op.w)!, rows, cols, f.dtype, { ...f.layout, groupSize: Math.min(f.layout.groupSize, cols) }));
  }
  const windows = [0, 1].map((s) => Array.from({ length: 48 }, (_, t) => (t * 31 + 7 * s + 3) % 64));
  const r = tuneScales(g, fp32, fp32, packed, windows, { steps: 8, lr: 0.01 });
  assert.ok(r.after < r.before, `calibration KL ${r.before} -> ${r.after}`);
  let moved = 0;
  for (const [name, p] of packed) {
    const t = r.packed.get(name)!;
    assert.equal(t.dtype, p.dtype);
    assert.deepEqual(t.layout, p.layout);
    assert.deepEqual(t.q, p.q, `${name}: integers changed`);
    assert.deepEqual(t.zeros, p.zeros, `${name}: zero points changed`);
    for (let j = 0; j < p.scales.length; j++) {
      assert.ok(p.scales[j] === 0 ? t.scales[j] === 0 : Math.sign(t.scales[j]) === Math.sign(p.scales[j]), `${name} scale ${j}: ${p.scales[j]} -> ${t.scales[j]}`);
      if (t.scales[j] !== p.scales[j]) moved++;
    }
    assert.ok(dequantize(t).every(Number.isFinite));
  }
  assert.ok(moved > 0, "no scale moved");
});

test("llmrt build --tune-steps: tuned after GPTQ, logged with the calibration KL before and after, recorded in the manifest; refused where it does not apply", async () => {
  const calib = join(tmp, "calib.txt");
  writeFileSync(calib, "Once upon a time a little fox found a red ball in the garden. ".repeat(9)); // ASCII tokens: 3 windows of 256
  const out = join(tmp, "e-tuned");
  const log = await build("--model", "synthetic:tiny", "-o", out, "--quant", "int4-wo", "--group-size", "32", "--calib-data", calib, "--calib-samples", "2", "--tune-steps", "3", "--max-seq-len", "64");
  const m = /gptq scales tuned end to end, 3 steps: calibration KL\(fp32 \|\| quantized\) ([\d.e+-]+) -> ([\d.e+-]+) on 2 of 2 windows \([\d.]+ s\)/.exec(log);
  assert.ok(m, log);
  assert.ok(Number(m[2]) < Number(m[1]), `${m[1]} -> ${m[2]}`);
  assert.match(log, /over 17 matmuls; scales tuned end to end, 3 steps/); // the build report's line says so too
  const quant = readManifest(out).build.quant!;
  assert.deepEqual(quant, { scheme: "int4-wo", groupSize: 32, asym: false, method: "gptq", awqScales: true, calibSamples: 2, calibSeqLen: 256, calibData: calib, tuneSteps: 3, tuneLr: 0.005 });
  assert.equal(describeOverrides(quant), "int4 g32 gptq, scales tuned 3 steps"); // llmrt inspect's quant line
  const e = Engine.load(out);
  try {
    assert.ok(e.forward(prefillStep([1, 2, 3, 4])).every(Number.isFinite));
  } finally {
    e.close();
  }

  const refused = async (re: RegExp, ...args: string[]) => assert.rejects(build("--model", "synthetic:tiny", "-o", join(tmp, "e-bad"), "--max-seq-len", "64", ...args), (err: unknown) => err instanceof OptionError && re.test(err.message));
  await refused(/--tune-steps: tunes GPTQ's scales: needs calibration text/, "--quant", "int4-wo", "--tune-steps", "4");
  await refused(/--tune-lr: sets the step size of --tune-steps/, "--quant", "int4-wo", "--calib-data", calib, "--tune-lr", "0.01");
  await refused(/--tune-lr: 2 is outside \(0, 1\]/, "--quant", "int4-wo", "--calib-data", calib, "--tune-steps", "4", "--tune-lr", "2");
  await refused(/--tune-steps: tunes weight-only int4 \/ int8 scales; w8a8/, "--quant", "w8a8", "--calib-data", calib, "--tune-steps", "4");
  await refused(/--tune-steps: --quant auto does not tune scales/, "--quant", "auto", "--calib-data", calib, "--tune-steps", "4");
});

/**
 * W8A8 (SmoothQuant): the reference W8A8 matmul against a float64 emulation of the same
 * quantization; calibration maxima on a hand-made graph; smoothing leaves fp32 logits
 * unchanged (the folds are exact); `llmrt build --quant w8a8 --calib-data` end to end with
 * its typed errors. The perplexity gates are in quant-w8a8-gate.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WeightMap } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { planEngine } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest, WeightsReader } from "../../src/engine/format.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { decodeEntry } from "../../src/engine/packed-weights.js";
import { w8a8Weights } from "../../src/engine/smoothquant.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { OptionError } from "../../src/errors.js";
import type { Graph } from "../../src/graph/ir.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { calibrationWindows, collectActivationRanges, prefillStep } from "../../src/quant/calibrate.js";
import { quantize } from "../../src/quant/quantize.js";
import { applySmoothing, planSmoothing } from "../../src/quant/smooth.js";
import { W8A8_MAX_K, matmulW8A8 } from "../../src/quant/w8a8.js";
import { matmul } from "../../src/backends/reference/ops.js";
import { runBuild as build } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-w8a8-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1; // U(-1, 1)
}

/** out [T, N] in float64: per-token int8 x (scale fround(amax / 127)) times the stored int8 weight, both dequantized. */
function emulate(x: Float32Array, q: Uint8Array, ws: Float32Array, bias: Float32Array, T: number, K: number, N: number): Float64Array {
  const out = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[t * K + k]));
    const sx = Math.fround(amax / 127);
    const xq = Array.from({ length: K }, (_, k) => (sx ? Math.max(-127, Math.min(127, Math.round(x[t * K + k] / sx))) * sx : 0));
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += xq[k] * (((q[n * K + k] << 24) >> 24) * ws[n]);
      out[t * N + n] = acc + bias[n];
    }
  }
  return out;
}

test("w8a8 matmul: per-token int8 x per-channel int8 -> int32 equals its float64 emulation (odd sizes, a zero row, an outlier)", () => {
  const r = rng(3);
  for (const [T, K, N] of [[5, 37, 11], [1, 3, 1], [7, 129, 13]]) {
    const x = Float32Array.from({ length: T * K }, r); // [T, K]
    x.fill(0, 0, K); // row 0 all zero: scale 0
    if (T > 1) x[K + 1] = 40; // row 1 has an outlier
    const w = Float32Array.from({ length: N * K }, r); // [N, K]
    const bias = Float32Array.from({ length: N }, r);
    const p = quantize(w, N, K, "w8a8", { groupSize: K, asym: false, scale: "f32" });
    const got = new Float32Array(T * N);
    matmulW8A8(got, x, p, bias, T, K, N);
    const want = emulate(x, p.q, p.scales, bias, T, K, N);
    let maxRel = 0;
    for (let i = 0; i < got.length; i++) maxRel = Math.max(maxRel, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-3));
    assert.ok(maxRel < 1e-5, `[${T}, ${K}, ${N}]: max relative difference ${maxRel}`);
    // it really quantizes the input: off the float result, but close
    const exact = new Float32Array(T * N);
    matmul(exact, x, w, bias, T, K, N);
    const diff = Math.max(...exact.map((v, i) => Math.abs(v - got[i])));
    if (K > 3) assert.ok(diff > 1e-4 && diff < 0.2 * Math.sqrt(K), `[${T}, ${K}, ${N}]: |w8a8 - fp32| max ${diff}`);
  }
  const wide = quantize(new Float32Array(W8A8_MAX_K + 1), 1, W8A8_MAX_K + 1, "w8a8", { groupSize: W8A8_MAX_K + 1, asym: false, scale: "f32" });
  assert.throws(() => matmulW8A8(new Float32Array(1), new Float32Array(W8A8_MAX_K + 1), wide, undefined, 1, W8A8_MAX_K + 1, 1), /int32 sums could overflow/);
});

test("calibration: per-channel max |x| of each matmul input over every window (hand-made graph)", () => {
  assert.deepEqual(calibrationWindows([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3, 4), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.deepEqual(calibrationWindows([0, 1, 2, 3, 4, 5], 1, 4), [[0, 1, 2, 3]]);
  // embedding -> matmul, and embedding -> silu -> matmul
  const g: Graph = {
    tensors: new Map([
      ["table", { kind: "weight", shape: [4, 3] }],
      ["w1", { kind: "weight", shape: [2, 3] }],
      ["w2", { kind: "weight", shape: [1, 3] }],
      ["e", { kind: "activation", rows: "T", cols: 3 }],
      ["s", { kind: "activation", rows: "T", cols: 3 }],
      ["y1", { kind: "activation", rows: "T", cols: 2 }],
      ["y2", { kind: "activation", rows: "T", cols: 1 }],
    ]),
    ops: [
      { op: "embedding", out: "e", table: "table" },
      { op: "matmul", out: "y1", x: "e", w: "w1" },
      { op: "silu", out: "s", x: "e" },
      { op: "matmul", out: "y2", x: "s", w: "w2" },
    ],
    outputs: ["y1", "y2"],
  };
  const table = Float32Array.of(1, -2, 0.5, /**/ -3, 1, 0, /**/ 0.25, 0.5, -4, /**/ 2, 2, 2); // [4, 3]
  const weights: WeightMap = new Map([["table", table], ["w1", new Float32Array(6)], ["w2", new Float32Array(3)]]);
  const ranges = collectActivationRanges(g, weights, { numLayers: 0, numKvHeads: 1, headDim: 1 }, [[0, 1], [2]]); // token 3 never seen
  assert.deepEqual([...ranges.get("e")!], [3, 2, 4]);
  const silu = (v: number) => Math.fround(v / (1 + Math.exp(-v)));
  const want = [0, 1, 2].map((c) => Math.max(...[0, 1, 2].map((t) => Math.abs(silu(table[t * 3 + c])))));
  assert.deepEqual([...ranges.get("s")!], want);
});

/** Logits of every row of a 23-token prefill, graph bound with `weights`. */
function logits(g: Graph, weights: WeightMap, numLayers: number, numKvHeads: number, headDim: number, ids: number[]): Float32Array {
  const kv = { numLayers, numBlocks: 2, blockSize: 16, numKvHeads, headDim };
  const step = { ...prefillStep(ids), logitRows: Int32Array.from(ids, (_, i) => i) };
  return new ReferenceBackend().bind(g, weights, kv).forward(step).get("logits")!;
}

test("smoothing is exact: fp32 logits unchanged after folding s into norms, V rows and up rows (GQA, qkv bias, alpha 0.8)", () => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, vocabSize: 120, attentionBias: true });
  const ckpt = syntheticCheckpoint(config, 4);
  const { graph } = planEngine(config, resolveBuildOptions(config, {}));
  const weights: WeightMap = new Map();
  for (const [n, d] of graph.tensors) if (d.kind === "weight") weights.set(n, materializeWeight(graph, n, ckpt));
  const ids = Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % 120);
  const ranges = collectActivationRanges(graph, weights, config, [ids.slice(0, 16), ids.slice(5)]);
  const plan = planSmoothing(graph, w8a8Weights(graph));
  assert.deepEqual(plan.unsmoothed, []);
  assert.deepEqual(plan.groups.map((gr) => gr.fold.kind), ["norm", "v->o", "norm", "up->down", "norm", "v->o", "norm", "up->down"]);
  const { weights: smoothed, stats } = applySmoothing(graph, weights, ranges, plan, 0.8);
  for (const s of stats) assert.ok(s.sMax / s.sMin > 1.2 && s.xMaxAfter < s.xMaxBefore, `${s.group.x}: s ${s.sMin}..${s.sMax}, max|x| ${s.xMaxBefore} -> ${s.xMaxAfter}`);
  assert.notDeepEqual(smoothed.get("blk.0.attn_norm.weight"), weights.get("blk.0.attn_norm.weight"));
  assert.notDeepEqual(smoothed.get("blk.0.attn_qkv.bias"), weights.get("blk.0.attn_qkv.bias")); // the V part of the bias
  const before = logits(graph, weights, 2, 2, config.headDim, ids);
  const after = logits(graph, smoothed, 2, 2, config.headDim, ids);
  const scale = Math.max(...before.map(Math.abs));
  const diff = Math.max(...before.map((v, i) => Math.abs(v - after[i])));
  assert.ok(diff < 2e-5 * scale, `max |logit diff| ${diff} (logits up to ${scale})`);
  // the check can fail: s on the matmuls without its fold changes the logits
  const unfolded = new Map(weights);
  for (const w of ["blk.0.attn_qkv.weight", "blk.0.ffn_gate_up.weight"]) unfolded.set(w, smoothed.get(w)!);
  const broken = logits(graph, unfolded, 2, 2, config.headDim, ids);
  assert.ok(Math.max(...before.map((v, i) => Math.abs(v - broken[i]))) > 100 * diff);
});

test("llmrt build --quant w8a8 --calib-data: log reports alpha, samples and per-layer smoothing; the engine runs; bad calibration input is refused", async () => {
  const calib = join(tmp, "calib.txt");
  writeFileSync(calib, "The quick brown fox jumps over the lazy dog. ".repeat(12)); // 540 ASCII tokens: 3 windows of 256
  const out = join(tmp, "e-w8a8");
  const log = await build("--model", "synthetic:tiny", "-o", out, "--quant", "w8a8", "--calib-data", calib, "--calib-samples", "2", "--smooth-alpha", "0.75", "--max-seq-len", "64");
  assert.match(log, /smoothquant: alpha 0\.75, 2 calibration samples of up to 256 tokens \(512 of 541 tokens of .*calib\.txt\)/);
  for (let l = 0; l < 4; l++) assert.match(log, new RegExp(`smoothquant layer ${l}: blk\\.${l}\\.attn_qkv\\.weight \\(norm\\): s [\\d.e+-]+\\.\\.[\\d.e+-]+, max\\|x\\| .* -> .*; blk\\.${l}\\.attn_output\\.weight \\(v->o\\)`));
  assert.match(log, /packed 16 w8a8 per-channel; smoothquant alpha 0\.75: 16 of 16 w8a8 matmuls smoothed \(8 by norm, 4 by v->o, 4 by up->down\); calibrated on 2 x 256 tokens/);
  const m = readManifest(out);
  assert.deepEqual(m.build.quant, { scheme: "w8a8", smoothAlpha: 0.75, calibSamples: 2, calibSeqLen: 256, calibData: calib });
  assert.equal(m.weights.tensors.filter((e) => e.dtype === "w8a8").length, 16);
  assert.equal(m.weights.tensors.find((e) => e.name === "output.weight")!.dtype, "f32"); // the classifier stays full precision

  // the engine runs, close to the fp32 model
  const e = Engine.load(out);
  const ids = Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % e.config.vocabSize);
  const step = { ...prefillStep(ids), logitRows: Int32Array.of(19) };
  const got = e.forward(step);
  const ref = Engine.fromCheckpoint(syntheticCheckpoint(syntheticConfig(SYNTHETIC_PRESETS.tiny), 0), { maxSeqLen: 64 }).forward(step);
  const diff = Math.max(...ref.map((v, i) => Math.abs(v - got[i])));
  assert.ok(diff > 0 && diff < 0.1 * Math.max(...ref.map(Math.abs)), `w8a8 vs fp32 max |logit diff| ${diff}`);

  // a backend that does not run w8a8 refuses its tensors instead of running them weight-only
  const entry = m.weights.tensors.find((t) => t.dtype === "w8a8")!;
  const reader = new WeightsReader(out, m);
  try {
    assert.throws(() => decodeEntry(reader.read(entry, true), entry, false), (err: unknown) => err instanceof OptionError && /w8a8 .* only the reference and cpu backends run/.test(err.message));
  } finally {
    reader.close();
  }

  // the cpu target runs it too, on its int8 x int8 kernel: the reference backend's logits, prefill and decode
  const outCpu = join(tmp, "e-w8a8-cpu");
  await build("--model", "synthetic:tiny", "-o", outCpu, "--quant", "w8a8", "--calib-data", calib, "--calib-samples", "2", "--smooth-alpha", "0.75", "--max-seq-len", "64", "--target", "cpu");
  assert.ok(readManifest(outCpu).weights.tensors.some((t) => t.dtype === "w8a8"));
  const onCpu = Engine.load(outCpu, { backend: new CpuBackend({ threads: 2 }) });
  const onRef = Engine.load(out); // the same build for the reference target
  try {
    // 20 tokens (the engine's many-token path), then 3 (its few-token path), 16 logit rows / 3
    const steps = [{ ...prefillStep(ids), logitRows: Int32Array.from({ length: 16 }, (_, i) => i + 4) }, { ...prefillStep(ids.slice(0, 3)), logitRows: Int32Array.of(0, 1, 2) }];
    for (const s of steps) {
      const a = onCpu.forward(s);
      const b = onRef.forward(s);
      const scale = Math.max(...b.map(Math.abs));
      const worst = Math.max(...b.map((v, i) => Math.abs(v - a[i])));
      assert.ok(worst < 1e-4 * scale, `cpu w8a8 vs reference: max |logit diff| ${worst} of ${scale}`);
    }
  } finally {
    onCpu.close();
    onRef.close();
  }

  const empty = join(tmp, "empty.txt");
  writeFileSync(empty, " \n");
  const o = join(tmp, "e-bad");
  const refused = async (re: RegExp, ...args: string[]) => assert.rejects(build("--model", "synthetic:tiny", "-o", o, ...args), (err: unknown) => err instanceof OptionError && re.test(err.message));
  await refused(/--calib-data: .*missing\.txt: no such file/, "--quant", "w8a8", "--calib-data", join(tmp, "missing.txt"));
  await refused(/--calib-data: .*empty\.txt is empty/, "--quant", "w8a8", "--calib-data", empty);
  await refused(/--calib-data: --quant w8a8 needs calibration text/, "--quant", "w8a8");
  await refused(/--calib-data: needs --quant w8a8/, "--calib-data", calib);
  await refused(/--smooth-alpha: applies to --quant w8a8 only/, "--quant", "int8-wo", "--smooth-alpha", "0.5");
  await refused(/--smooth-alpha: 1\.5 is outside \[0, 1\]/, "--quant", "w8a8", "--calib-data", calib, "--smooth-alpha", "1.5");
  await refused(/--quant: w8a8 .* runs on the reference and cpu targets only, not "cuda"/, "--quant", "w8a8", "--calib-data", calib, "--target", "cuda");
});

/**
 * GPTQ (src/quant/gptq.ts): on random matrices with correlated inputs it lowers the
 * layer's output error below round-to-nearest's, in the same packed format (ragged last
 * group, sym / asym int4, per-channel int8); the Hessian, output error and Cholesky
 * helpers against direct sums; the activation-aware scales fold exactly and never raise
 * the searched error; `llmrt build --quant int4-wo --calib-data` end to end; the
 * build log's labels of packed weights by their source. The perplexity gates are in
 * quant-gptq-gate.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { packedSummary, packWeight } from "../../src/engine/packed-weights.js";
import { OptionError } from "../../src/errors.js";
import type { Graph } from "../../src/graph/ir.js";
import { gptqQuantize, outputError } from "../../src/quant/gptq.js";
import { HessianAccumulator } from "../../src/quant/hessian.js";
import { cholesky, inverseFromCholesky } from "../../src/quant/linalg.js";
import { decodePacked, dequantize, encodePacked, groupsPerRow, type PackedLayout } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";
import { runBuild as build } from "../helpers/cli.js";
import type { WeightMap } from "../../src/backends/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { planEngine } from "../../src/engine/build.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { searchAwqScales } from "../../src/quant/awq.js";
import { prefillStep } from "../../src/quant/calibrate.js";
import { collectHessians } from "../../src/quant/sequential.js";
import { planSmoothing } from "../../src/quant/smooth.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-gptq-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1; // U(-1, 1)
}

/** X [N, K] with correlated columns (a random mix of K/4 factors) and a few large channels, as LLM activations have. */
function correlatedInputs(N: number, K: number, seed: number): Float32Array {
  const r = rng(seed);
  const F = Math.max(2, K >> 2);
  const mix = Float32Array.from({ length: F * K }, r); // [F, K]
  const X = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const z = Array.from({ length: F }, r);
    for (let k = 0; k < K; k++) {
      let v = 0.1 * r();
      for (let f = 0; f < F; f++) v += z[f] * mix[f * K + k];
      X[n * K + k] = k % 17 === 3 ? 8 * v : v;
    }
  }
  return X;
}

/** ||X (W - Q)^T||^2 summed directly. */
function directError(X: Float32Array, W: Float32Array, Q: Float32Array, N: number, K: number, rows: number): number {
  let e = 0;
  for (let n = 0; n < N; n++) {
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let k = 0; k < K; k++) d += X[n * K + k] * (W[r * K + k] - Q[r * K + k]);
      e += d * d;
    }
  }
  return e;
}

test("linalg: inverse from the Cholesky factor gives H H^-1 = I", () => {
  const K = 9;
  const X = correlatedInputs(40, K, 1);
  const acc = new HessianAccumulator(K);
  acc.add(X);
  const H = acc.hessian();
  const L = cholesky(H, K)!;
  const Hi = inverseFromCholesky(L, K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += H[i * K + k] * Hi[k * K + j];
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-8, `(H H^-1)[${i}, ${j}] = ${s}`);
    }
  }
  assert.equal(cholesky(Float64Array.of(1, 2, 2, 1), 2), null); // not positive definite
});

const FORMATS: [string, "int4" | "int8", PackedLayout][] = [
  ["int4 g32 sym (ragged last group of 4)", "int4", { groupSize: 32, asym: false, scale: "f32" }],
  ["int4 g32 asym", "int4", { groupSize: 32, asym: true, scale: "f32" }],
  ["int4 g64 sym", "int4", { groupSize: 64, asym: false, scale: "f32" }],
  ["int8 per-channel", "int8", { groupSize: 100, asym: false, scale: "f32" }],
];

for (const [name, dtype, layout] of FORMATS) {
  test(`GPTQ ${name}: lower layer output error than round-to-nearest, same packed format`, () => {
    const [rows, K, N] = [24, 100, 300];
    const r = rng(7);
    const W = Float32Array.from({ length: rows * K }, r); // [rows, K]
    const X = correlatedInputs(N, K, 3); // [N, K]
    const acc = new HessianAccumulator(K);
    acc.add(X.subarray(0, 150 * K));
    acc.add(X.subarray(150 * K)); // window by window, as the calibration adds them
    const H = acc.hessian();
    const g = gptqQuantize(W, rows, K, H, dtype, layout);
    const rtn = quantize(W, rows, K, dtype, layout);
    const [qg, qr] = [dequantize(g.packed), dequantize(rtn)];
    const eg = directError(X, W, qg, N, K, rows);
    const er = directError(X, W, qr, N, K, rows);
    // outputError is the same measure through H: 2 ||X dW^T||^2 / N
    const viaH = outputError(W, qg, rows, K, H).error;
    assert.ok(Math.abs(viaH - (2 * eg) / N) < 1e-6 * viaH, `outputError ${viaH} vs direct ${(2 * eg) / N}`);
    assert.ok(eg < 0.7 * er, `gptq ${eg} vs rtn ${er}`);
    // the packed form: the format's own shape, and it reads back through encode / decode
    assert.equal(g.packed.dtype, dtype);
    assert.deepEqual(g.packed.layout, layout);
    assert.equal(g.packed.scales.length, rows * groupsPerRow(K, layout.groupSize));
    assert.equal(g.packed.zeros !== null, layout.asym && dtype === "int4");
    const back = decodePacked(encodePacked(g.packed), dtype, layout, [rows, K]);
    assert.deepEqual(dequantize(back), qg);
    assert.equal(g.deadColumns, 0);
  });
}

test("GPTQ: an input column that is always zero is dead (weights 0), the others still quantize", () => {
  const [rows, K, N] = [8, 40, 120];
  const X = correlatedInputs(N, K, 5);
  for (let n = 0; n < N; n++) X[n * K + 11] = 0;
  const acc = new HessianAccumulator(K);
  acc.add(X);
  const W = Float32Array.from({ length: rows * K }, rng(9));
  const g = gptqQuantize(W, rows, K, acc.hessian(), "int4", { groupSize: 32, asym: false, scale: "f32" });
  assert.equal(g.deadColumns, 1);
  const q = dequantize(g.packed);
  for (let r = 0; r < rows; r++) assert.ok(q[r * K + 11] === 0, `row ${r}: ${q[r * K + 11]}`);
  assert.ok(q.some((v) => v !== 0));
});

test("llmrt build --quant int4-wo --calib-data: activation-aware scales and GPTQ with per-layer errors in the log; without it round-to-nearest, and the log says so", async () => {
  const calib = join(tmp, "calib.txt");
  writeFileSync(calib, "Once upon a time a little fox found a red ball in the garden. ".repeat(9)); // ASCII tokens: 3 windows of 256
  const out = join(tmp, "e-gptq");
  const log = await build("--model", "synthetic:tiny", "-o", out, "--quant", "int4-wo", "--group-size", "32", "--calib-data", calib, "--calib-samples", "2", "--max-seq-len", "64");
  assert.match(log, /gptq: int4 g32 sym, 2 calibration samples of up to 256 tokens \(512 of \d+ tokens of .*calib\.txt\); dampening 10% of mean diag\(H\)/);
  for (let l = 0; l < 4; l++) assert.match(log, new RegExp(`awq layer ${l}: attn_qkv \\(norm\\) alpha [\\d.]+: [\\d.e+-]+ \\(unscaled [\\d.e+-]+\\), attn_output \\(v->o\\) alpha .*, ffn_gate_up \\(norm\\) alpha .*, ffn_down \\(up->down\\) alpha`));
  for (let l = 0; l < 4; l++) assert.match(log, new RegExp(`gptq layer ${l}: attn_qkv [\\d.e+-]+ \\(rtn [\\d.e+-]+\\), attn_output .*, ffn_gate_up .*, ffn_down [\\d.e+-]+ \\(rtn [\\d.e+-]+\\)`));
  const total = /gptq total: mean relative output error ([\d.e+-]+) \(round-to-nearest ([\d.e+-]+), [\d.]+x\) over 17 matmuls/.exec(log);
  assert.ok(total, log);
  assert.ok(Number(total[1]) < Number(total[2]), `gptq ${total[1]} vs rtn ${total[2]}`);
  assert.match(log, /packed 17 int4 g32 gptq-calibrated; ragged last groups: 4 x 172 cols -> last group 12; gptq int4 g32 sym calibrated on 2 x 256 tokens, activation-aware scales on \d+ of 17 layer groups/);
  const m = readManifest(out);
  assert.deepEqual(m.build.quant, { scheme: "int4-wo", groupSize: 32, asym: false, method: "gptq", awqScales: true, calibSamples: 2, calibSeqLen: 256, calibData: calib });
  assert.equal(m.weights.tensors.filter((e) => e.dtype === "int4").length, 17); // 4 x (qkv, o, gate_up, down) + the untied classifier
  const e = Engine.load(out);
  try {
    const logits = e.forward(prefillStep([1, 2, 3, 4]));
    assert.ok(logits.every(Number.isFinite));
  } finally {
    e.close();
  }

  const rtnLog = await build("--model", "synthetic:tiny", "-o", join(tmp, "e-rtn"), "--quant", "int4-wo", "--max-seq-len", "64");
  assert.match(rtnLog, /int4-wo: round-to-nearest weights \(no calibration text\); pass --calib-data FILE to quantize with GPTQ instead/);
  assert.doesNotMatch(rtnLog, /gptq[ :]/);
  const refused = async (re: RegExp, ...args: string[]) => assert.rejects(build("--model", "synthetic:tiny", "-o", join(tmp, "e-bad"), ...args), (err: unknown) => err instanceof OptionError && re.test(err.message));
  await refused(/--calib-samples: needs --calib-data with --quant int4-wo/, "--quant", "int4-wo", "--calib-samples", "4");
  await refused(/--smooth-alpha: applies to --quant w8a8 only, not int4-wo/, "--quant", "int4-wo", "--calib-data", calib, "--smooth-alpha", "0.5");
  await refused(/--calib-data: .*missing\.txt: no such file/, "--quant", "int4-wo", "--calib-data", join(tmp, "missing.txt"));
});

test("build log: weights kept packed from an AWQ / GPTQ checkpoint are labelled by their quantizer, GGUF blocks as gguf", () => {
  const w = "blk.0.attn_output.weight";
  const g: Graph = { tensors: new Map([[w, { kind: "weight", shape: [4, 64] }], ["x", { kind: "activation", rows: "T", cols: 64 }], ["y", { kind: "activation", rows: "T", cols: 4 }]]), ops: [{ op: "matmul", out: "y", x: "x", w }], outputs: ["y"] };
  const kept = quantize(new Float32Array(256).fill(0.5), 4, 64, "int4", { groupSize: 32, asym: true, scale: "f32" });
  const fake = (extra: Partial<Checkpoint>): Checkpoint => ({ format: "safetensors", path: "x", has: () => true, readPacked: () => kept, ...extra }) as unknown as Checkpoint;
  for (const method of ["awq", "gptq"] as const) {
    const p = packWeight(g, w, fake({ quantMethod: method }), undefined, () => true, new Set([w]))!;
    assert.equal(p.origin, method);
    assert.equal(packedSummary([{ name: w, p }]), `packed 1 ${method} int4 g32 asym`);
  }
  assert.equal(packedSummary([{ name: w, p: { packed: kept, origin: "gguf" } }]), "packed 1 gguf int4 g32 asym");
  assert.equal(packedSummary([{ name: w, p: { packed: kept, origin: "calibrated" } }]), "packed 1 int4 g32 asym gptq-calibrated");
});

test("activation-aware scales: folds leave fp32 logits unchanged (GQA, qkv bias), and each group's searched int4 error is at most its unscaled one", () => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, vocabSize: 120, attentionBias: true });
  const ckpt = syntheticCheckpoint(config, 4);
  const { graph } = planEngine(config, resolveBuildOptions(config, {}));
  const weights: WeightMap = new Map();
  for (const [n, d] of graph.tensors) if (d.kind === "weight") weights.set(n, materializeWeight(graph, n, ckpt));
  const ids = Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % 120);
  const targets = new Set([...graph.tensors.keys()].filter((n) => /^blk\.\d+\.(attn_qkv|attn_output|ffn_gate_up|ffn_down)\.weight$/.test(n)));
  const plan = planSmoothing(graph, targets);
  const hessians = collectHessians(graph, weights, plan.groups.map((gr) => gr.x), config, [ids.slice(0, 16), ids.slice(5)]);
  const layout: PackedLayout = { groupSize: 32, asym: false, scale: "f32" };
  const roundTrip = (w: Float32Array, rows: number, cols: number) => dequantize(quantize(w, rows, cols, "int4", layout));
  const normBefore = weights.get("blk.0.attn_norm.weight")!.slice();
  const { weights: scaled, choices } = searchAwqScales(graph, weights, plan.groups, hessians, roundTrip);
  assert.equal(choices.length, 8);
  for (const c of choices) assert.ok(c.error <= c.unscaled, `${c.group.x}: alpha ${c.alpha} error ${c.error} vs unscaled ${c.unscaled}`);
  assert.ok(choices.some((c) => c.alpha > 0 && c.error < c.unscaled), "the search never found a scale that helps");
  const kv = { numLayers: 2, numBlocks: 2, blockSize: 16, numKvHeads: 2, headDim: config.headDim };
  const step = { ...prefillStep(ids), logitRows: Int32Array.from(ids, (_, i) => i) };
  const run = (w: WeightMap) => new ReferenceBackend().bind(graph, w, kv).forward(step).get("logits")!;
  const [before, after] = [run(weights), run(scaled)];
  const scale = Math.max(...before.map(Math.abs));
  const diff = Math.max(...before.map((v, i) => Math.abs(v - after[i])));
  assert.ok(diff < 2e-5 * scale, `max |logit diff| ${diff} (logits up to ${scale})`);
  assert.deepEqual(weights.get("blk.0.attn_norm.weight"), normBefore); // the input map is left as it was
});

/**
 * Pre-quantized Hugging Face checkpoints (AWQ GEMM, GPTQ). The tests quantize random
 * weights themselves, pack them with the little packers below (written from the formats'
 * descriptions, independent of the reader), and check that the reader gives back exactly
 * the weights the test dequantizes, that whole models from those directories run exactly
 * like the float32 directory of the same weights, and that bad inputs are typed errors.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { expectedTensors } from "../../src/checkpoint/expected-tensors.js";
import { f16ToF32, f32ToF16 } from "../../src/checkpoint/fp16.js";
import { hfConfigJson } from "../../src/checkpoint/hf-config.js";
import { canonicalToHf } from "../../src/checkpoint/hf-names.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { writeSafetensors, type SafetensorsI32Tensor, type SafetensorsTensor } from "../../src/checkpoint/write-safetensors.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { CheckpointError, ConfigError } from "../../src/errors.js";
import { dequantize } from "../../src/quant/packed.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { randomTensors, smallConfig, tempDir } from "./checkpoint-util.js";

// ---- the test's own quantizer and packers ----

const Q_PROJ = "model.layers.0.self_attn.q_proj";

interface Variant {
  method: "awq" | "gptq";
  bits: number;
  /** -1: one group per row */
  groupSize: number;
  sym?: boolean;
  descAct?: boolean;
  /** GPTQ: "gptq" (v1, zeros stored minus one) or "gptq_v2" */
  format?: string;
}

/** One linear quantized by the test: integers [out, in], zeros and scales [groups, out], g_idx [in]. */
interface Quantized {
  out: number;
  inp: number;
  q: Uint8Array;
  zeros: Int32Array;
  scales: Float32Array;
  gIdx: Int32Array;
  groups: number;
}

const f16 = (x: number) => f16ToF32(f32ToF16(x));
/** The smallest f16 at or above x > 0: a symmetric scale rounded up keeps every q - zero in [-(2^(bits-1) - 1), 2^(bits-1)]. */
const f16Up = (x: number) => (f16(x) >= x ? f16(x) : f16ToF32(f32ToF16(x) + 1));

/** A deterministic permutation of 0..n-1 (the desc_act column order). */
function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Min/max quantization per (group, output row) as AWQ and GPTQ do it, with f16 scales. */
function quantizeLinear(w: Float32Array, out: number, inp: number, v: Variant, seed: number): Quantized {
  const gs = v.groupSize === -1 ? inp : v.groupSize;
  const groups = Math.ceil(inp / gs);
  const gIdx = new Int32Array(inp);
  const order = v.descAct ? permutation(inp, seed) : Array.from({ length: inp }, (_, i) => i);
  order.forEach((k, pos) => (gIdx[k] = Math.floor(pos / gs)));
  const maxq = 2 ** v.bits - 1;
  const q = new Uint8Array(out * inp);
  const zeros = new Int32Array(groups * out);
  const scales = new Float32Array(groups * out);
  for (let g = 0; g < groups; g++) {
    const cols = [...gIdx.keys()].filter((k) => gIdx[k] === g);
    for (let n = 0; n < out; n++) {
      let lo = 0;
      let hi = 0;
      for (const k of cols) (lo = Math.min(lo, w[n * inp + k])), (hi = Math.max(hi, w[n * inp + k]));
      if (v.sym) hi = Math.max(hi, -lo);
      const scale = v.sym ? f16Up((2 * hi) / maxq || 1) : f16((hi - lo) / maxq || 1);
      const zero = v.sym ? 2 ** (v.bits - 1) : Math.min(maxq, Math.max(0, Math.round(-lo / scale)));
      scales[g * out + n] = scale;
      zeros[g * out + n] = zero;
      for (const k of cols) q[n * inp + k] = Math.min(maxq, Math.max(0, Math.round(w[n * inp + k] / scale) + zero));
    }
  }
  return { out, inp, q, zeros, scales, gIdx, groups };
}

/** The zero point a reader must use: GPTQ v1 stores zero - 1 in `bits` bits, so a zero of 0 comes back as 2^bits. */
function effectiveZero(z: number, v: Variant): number {
  if (v.method === "awq" || v.format === "gptq_v2") return z;
  return ((z - 1) & (2 ** v.bits - 1)) + 1;
}

/** The test's dequantization: w[n, k] = scale * (q - zero) in float32. */
function dequantizeTest(l: Quantized, v: Variant): Float32Array {
  const w = new Float32Array(l.out * l.inp);
  for (let n = 0; n < l.out; n++) {
    for (let k = 0; k < l.inp; k++) {
      const gn = l.gIdx[k] * l.out + n;
      w[n * l.inp + k] = l.scales[gn] * (l.q[n * l.inp + k] - effectiveZero(l.zeros[gn], v));
    }
  }
  return w;
}

/** Sets `bits` bits of `value` at bit offset `pos` of a little-endian stream of int32 words, one bit at a time. */
function putBits(words: Int32Array, wordAt: (i: number) => number, pos: number, value: number, bits: number): void {
  for (let b = 0; b < bits; b++) {
    if ((value >> b) & 1) words[wordAt((pos + b) >> 5)] |= 1 << ((pos + b) & 31);
  }
}

const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; // nibble i of word j holds output column 8j + AWQ_ORDER[i]

/** [rows, cols] values -> AWQ words [rows, cols / 8], interleaved. */
function awqPack(value: (r: number, c: number) => number, rows: number, cols: number): Int32Array {
  const words = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols / 8; j++) {
      for (let i = 0; i < 8; i++) words[r * (cols / 8) + j] |= value(r, 8 * j + AWQ_ORDER[i]) << (4 * i);
    }
  }
  return words;
}

type Tensor = SafetensorsTensor | SafetensorsI32Tensor;
/** The test writes arrays, never lazy functions. */
const arrayOf = (t: Tensor) => t.data as Float32Array | Int32Array;

function packLinear(prefix: string, l: Quantized, v: Variant): Tensor[] {
  const { out, inp } = l;
  const scales: Tensor = { name: `${prefix}.scales`, dtype: "f16", shape: [l.groups, out], data: l.scales };
  if (v.method === "awq") {
    return [
      { name: `${prefix}.qweight`, dtype: "i32", shape: [inp, out / 8], data: awqPack((k, n) => l.q[n * inp + k], inp, out) },
      { name: `${prefix}.qzeros`, dtype: "i32", shape: [l.groups, out / 8], data: awqPack((g, n) => l.zeros[g * out + n], l.groups, out) },
      scales,
    ];
  }
  const mask = 2 ** v.bits - 1;
  const qweight = new Int32Array(((inp * v.bits) / 32) * out); // [in * bits / 32, out]
  for (let n = 0; n < out; n++) for (let k = 0; k < inp; k++) putBits(qweight, (w) => w * out + n, k * v.bits, l.q[n * inp + k], v.bits);
  const zc = Math.ceil((out * v.bits) / 32);
  const qzeros = new Int32Array(l.groups * zc); // [groups, ceil(out * bits / 32)]
  const stored = (z: number) => (v.format === "gptq_v2" ? z : (z - 1) & mask);
  for (let g = 0; g < l.groups; g++) for (let n = 0; n < out; n++) putBits(qzeros, (w) => g * zc + w, n * v.bits, stored(l.zeros[g * out + n]), v.bits);
  return [
    { name: `${prefix}.qweight`, dtype: "i32", shape: [(inp * v.bits) / 32, out], data: qweight },
    { name: `${prefix}.qzeros`, dtype: "i32", shape: [l.groups, zc], data: qzeros },
    scales,
    { name: `${prefix}.g_idx`, dtype: "i32", shape: [inp], data: l.gIdx },
  ];
}

function quantizationConfig(v: Variant): Record<string, unknown> {
  if (v.method === "awq") return { quant_method: "awq", bits: v.bits, group_size: v.groupSize, zero_point: true, version: "gemm" };
  return { quant_method: "gptq", bits: v.bits, group_size: v.groupSize, desc_act: !!v.descAct, sym: !!v.sym, checkpoint_format: v.format ?? "gptq", damp_percent: 0.01 };
}

const isLinear = (name: string) => /\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(name);

interface QuantDir {
  dir: string;
  /** The test's dequantization of every tensor, canonical names (float tensors as written). */
  weights: Map<string, Float32Array>;
}

/** Quantizes every linear of random weights for `config` and writes the directory; `tamper` edits the tensor list first. */
function writeQuantDir(dir: string, config: ModelConfig, v: Variant, tamper: (t: Tensor[]) => Tensor[] = (t) => t, qc = quantizationConfig(v), split = false): QuantDir {
  const src = randomTensors(config, 7);
  const weights = new Map<string, Float32Array>();
  const tensors: Tensor[] = [];
  let seed = 1;
  for (const [name, shape] of expectedTensors(config)) {
    const w = src.get(name)!;
    const hf = canonicalToHf(name)!;
    if (!isLinear(name)) {
      tensors.push({ name: hf, dtype: "f32", shape, data: w });
      weights.set(name, w);
      continue;
    }
    const l = quantizeLinear(w, shape[0], shape[1], v, seed++);
    tensors.push(...packLinear(hf.slice(0, -".weight".length), l, v));
    weights.set(name, dequantizeTest(l, v));
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...hfConfigJson(config), torch_dtype: "float16", quantization_config: qc }));
  if (!split) {
    writeSafetensors(join(dir, "model.safetensors"), tamper(tensors), { format: "pt" });
    return { dir, weights };
  }
  // two shards, every other tensor in each: a linear's parts end up in different files
  const names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
  const weightMap: Record<string, string> = {};
  names.forEach((f, i) => {
    const mine = tamper(tensors).filter((_, j) => j % 2 === i);
    writeSafetensors(join(dir, f), mine, { format: "pt" });
    for (const x of mine) weightMap[x.name] = f;
  });
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return { dir, weights };
}

// ---- 1. dequantized weights ----

/** Layer shapes that stress the packing: ragged groups, outputs not a multiple of 32, one group per row. */
const ODD = smallConfig({ hiddenSize: 48, numHeads: 6, numKvHeads: 2, headDim: 8, intermediateSize: 40, rope: { theta: 10000, style: "neox", dim: 8, scaling: { type: "none" } } });
const ODD_GPTQ = smallConfig({ hiddenSize: 40, numHeads: 4, numKvHeads: 1, headDim: 10, intermediateSize: 24, rope: { theta: 10000, style: "neox", dim: 10, scaling: { type: "none" } } });
const WIDE = smallConfig({ hiddenSize: 64, numHeads: 4, numKvHeads: 1, headDim: 16, intermediateSize: 96, rope: { theta: 10000, style: "neox", dim: 16, scaling: { type: "none" } } });

const READ_CASES: { name: string; config: ModelConfig; v: Variant; packed: "int4" | "int8" | "none" | "any" }[] = [
  { name: "AWQ g32 (ragged last group)", config: ODD, v: { method: "awq", bits: 4, groupSize: 32 }, packed: "int4" },
  { name: "AWQ g16", config: ODD, v: { method: "awq", bits: 4, groupSize: 16 }, packed: "int4" },
  { name: "AWQ g128 (one group wider than the row)", config: ODD, v: { method: "awq", bits: 4, groupSize: 128 }, packed: "int4" },
  { name: "AWQ g-1", config: ODD, v: { method: "awq", bits: 4, groupSize: -1 }, packed: "int4" },
  { name: "GPTQ 4-bit g16 sym", config: ODD_GPTQ, v: { method: "gptq", bits: 4, groupSize: 16, sym: true }, packed: "int4" },
  { name: "GPTQ 4-bit g32 asym v1 (zero 0 reads back as 16)", config: ODD_GPTQ, v: { method: "gptq", bits: 4, groupSize: 32 }, packed: "any" },
  { name: "GPTQ 4-bit g32 asym gptq_v2", config: ODD_GPTQ, v: { method: "gptq", bits: 4, groupSize: 32, format: "gptq_v2" }, packed: "int4" },
  { name: "GPTQ 4-bit g16 desc_act", config: ODD_GPTQ, v: { method: "gptq", bits: 4, groupSize: 16, sym: true, descAct: true }, packed: "none" },
  { name: "GPTQ 8-bit g12 sym", config: ODD_GPTQ, v: { method: "gptq", bits: 8, groupSize: 12, sym: true }, packed: "int8" },
  { name: "GPTQ 8-bit g8 asym", config: ODD_GPTQ, v: { method: "gptq", bits: 8, groupSize: 8 }, packed: "none" },
  { name: "GPTQ 8-bit g-1 asym desc_act", config: ODD_GPTQ, v: { method: "gptq", bits: 8, groupSize: -1, descAct: true }, packed: "none" },
  { name: "GPTQ 3-bit g32 asym", config: WIDE, v: { method: "gptq", bits: 3, groupSize: 32 }, packed: "none" },
  { name: "GPTQ 3-bit g16 sym desc_act", config: WIDE, v: { method: "gptq", bits: 3, groupSize: 16, sym: true, descAct: true }, packed: "none" },
  { name: "GPTQ 2-bit g48 asym (ragged)", config: WIDE, v: { method: "gptq", bits: 2, groupSize: 48 }, packed: "none" },
];

for (const c of READ_CASES) {
  test(`${c.name}: every linear reads back as exactly the test's dequantized float32`, (t) => {
    const { dir, weights } = writeQuantDir(join(tempDir(t), "q"), c.config, c.v);
    const ckpt = openCheckpoint(dir);
    try {
      let packedCount = 0;
      for (const [name, want] of weights) {
        const info = ckpt.info(name);
        assert.deepEqual(info.shape, expectedTensors(c.config).get(name), name);
        assert.deepEqual(ckpt.readF32(name), want, name);
        if (!isLinear(name)) continue;
        const p = ckpt.readPacked!(name);
        if (c.packed === "none") assert.equal(p, undefined, `${name}: no packed format holds it`);
        if (c.packed === "int4" || c.packed === "int8") assert.equal(p?.dtype, c.packed, name);
        if (p) {
          packedCount++;
          assert.deepEqual(dequantize(p), want, `${name}: the packed form holds the same values`);
        }
      }
      if (c.packed === "any") assert.ok(packedCount > 0, "some linears map onto a packed format");
    } finally {
      ckpt.close();
    }
  });
}

test("sharded: a linear's qweight, qzeros, scales and g_idx may lie in different shards", (t) => {
  for (const v of [{ method: "awq", bits: 4, groupSize: 16 }, { method: "gptq", bits: 4, groupSize: 8, descAct: true }] as Variant[]) {
    const { dir, weights } = writeQuantDir(join(tempDir(t), v.method), smallConfig(), v, undefined, undefined, true);
    const ckpt = openCheckpoint(dir);
    for (const [name, want] of weights) assert.deepEqual(ckpt.readF32(name), want, `${v.method} ${name}`);
    ckpt.close();
  }
});

test("GPTQ v1 with a zero point of 0 cannot stay packed as int4 (it reads as 16), and reads exactly as float32", (t) => {
  const v: Variant = { method: "gptq", bits: 4, groupSize: 8 };
  const { dir, weights } = writeQuantDir(join(tempDir(t), "q"), ODD_GPTQ, v);
  const ckpt = openCheckpoint(dir);
  let unpacked = 0;
  for (const name of weights.keys()) if (isLinear(name) && ckpt.readPacked!(name) === undefined) unpacked++;
  ckpt.close();
  assert.ok(unpacked > 0, "random weights always have a group whose minimum is 0 or more somewhere: zero 0");
});

test("GPTQ 8-bit sym with a value of -128 (q = 0) cannot stay packed as int8, and reads exactly as float32", (t) => {
  const v: Variant = { method: "gptq", bits: 8, groupSize: 16, sym: true };
  const qweight = `${Q_PROJ}.qweight`;
  // q[0, 0] is the low byte of qweight word [0, 0]: zero it
  const tamper = (ts: Tensor[]) => ts.map((x) => (x.name === qweight ? ({ ...x, data: arrayOf(x).map((w, i) => (i === 0 ? w & ~0xff : w)) } as Tensor) : x));
  const { dir, weights } = writeQuantDir(join(tempDir(t), "q"), smallConfig(), v, tamper);
  const ckpt = openCheckpoint(dir);
  const w = ckpt.readF32("blk.0.attn_q.weight");
  const want = weights.get("blk.0.attn_q.weight")!;
  assert.equal(ckpt.readPacked!("blk.0.attn_q.weight"), undefined);
  assert.deepEqual(w.subarray(1), want.subarray(1), "the other values are unchanged");
  assert.ok(w[0] < 0 && w[0] < want[0], `the tampered value reads as scale * (0 - 128): ${w[0]}`);
  ckpt.close();
});

// ---- 2. whole models ----

/** Greedy tokens and the logits of each step (last row) of `n` decode steps after `prompt`. */
function greedy(engine: Engine, prompt: number[], n: number): { tokens: number[]; logits: Float32Array[] } {
  const pool = new BlockPool(16, 4);
  const seq = new Sequence(0, prompt);
  const logits: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const numNew = seq.numTokens - seq.numComputed;
    assert.ok(pool.reserve(seq, seq.numTokens));
    const out = engine.forward(buildStep([{ seq, numNew, wantLogits: true }], 4));
    const last = out.slice(out.length - engine.config.vocabSize);
    logits.push(last);
    seq.numComputed += numNew;
    seq.tokens.push(last.indexOf(Math.max(...last)));
  }
  return { tokens: seq.tokens.slice(prompt.length), logits };
}

const MODEL_CASES: { name: string; v: Variant; keptPacked: boolean }[] = [
  { name: "AWQ g16", v: { method: "awq", bits: 4, groupSize: 16 }, keptPacked: true },
  { name: "GPTQ 4-bit g16 sym", v: { method: "gptq", bits: 4, groupSize: 16, sym: true }, keptPacked: true },
  { name: "GPTQ 4-bit g8 desc_act", v: { method: "gptq", bits: 4, groupSize: 8, sym: true, descAct: true }, keptPacked: false },
  { name: "GPTQ 8-bit g32 asym desc_act", v: { method: "gptq", bits: 8, groupSize: 32, descAct: true }, keptPacked: false },
];

const PROMPT = [1, 17, 42, 5, 99, 250, 3];
const OPTS = { maxSeqs: 1, maxSeqLen: 32, blockSize: 4, numBlocks: 16 };

for (const c of MODEL_CASES) {
  test(`${c.name}: a tiny Llama runs exactly like the float32 directory of its dequantized weights`, (t) => {
    const tmp = tempDir(t);
    const config = smallConfig();
    const { dir, weights } = writeQuantDir(join(tmp, "quant"), config, c.v);
    writeHfCheckpoint(join(tmp, "f32"), config, weights);
    const quant = openCheckpoint(dir);
    const plain = openCheckpoint(join(tmp, "f32"));
    try {
      const want = greedy(Engine.fromCheckpoint(plain, OPTS), PROMPT, 6);
      const got = greedy(Engine.fromCheckpoint(quant, OPTS), PROMPT, 6);
      assert.deepEqual(got.tokens, want.tokens);
      assert.deepEqual(got.logits, want.logits);

      // an engine dir for the reference target keeps exact layouts packed
      buildEngineDir(quant, join(tmp, "engine"), { maxSeqs: 1, maxSeqLen: 32, maxBatchTokens: 32, maxLogitRows: 32 });
      const dtypes = new Set(readManifest(join(tmp, "engine")).weights.tensors.map((e) => e.dtype));
      assert.equal(dtypes.has(c.v.bits === 8 ? "int8" : "int4"), c.keptPacked, [...dtypes].join(", "));
      const built = greedy(Engine.load(join(tmp, "engine"), { blockSize: 4, numBlocks: 16 }), PROMPT, 6);
      assert.deepEqual(built.tokens, want.tokens);
      built.logits.forEach((l, i) => l.forEach((x, j) => assert.ok(Math.abs(x - want.logits[i][j]) <= 1e-4, `step ${i} logit ${j}: ${x} vs ${want.logits[i][j]}`)));
    } finally {
      quant.close();
      plain.close();
    }
  });
}

// ---- 3. bad input ----

function expectError<E extends Error>(fn: () => unknown, type: new (...a: never[]) => E, file: string, ...res: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.ok(e.message.includes(file), `names the file: ${e.message}`);
    for (const re of res) assert.match(e.message, re);
    return true;
  });
}

test("bad tensors are CheckpointErrors naming the file and the tensor", (t) => {
  const tmp = tempDir(t);
  const config = smallConfig();
  const awq: Variant = { method: "awq", bits: 4, groupSize: 16 };
  const gptq: Variant = { method: "gptq", bits: 4, groupSize: 16, sym: true };
  const st = (d: string) => join(d, "model.safetensors");
  const reshape = (name: string, shape: number[]) => (ts: Tensor[]) =>
    ts.map((x) => (x.name === name ? ({ ...x, shape, data: arrayOf(x).slice(0, shape.reduce((a, b) => a * b, 1)) } as Tensor) : x));
  const drop = (name: string) => (ts: Tensor[]) => ts.filter((x) => x.name !== name);

  let d = writeQuantDir(join(tmp, "a"), config, awq, reshape(`${Q_PROJ}.qweight`, [32, 2])).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.qweight has shape \[32, 2\], want \[32, 4\]/, /AWQ GEMM/);
  d = writeQuantDir(join(tmp, "b"), config, gptq, reshape(`${Q_PROJ}.qweight`, [2, 32])).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.qweight has shape \[2, 32\], want \[4, 32\]/, /GPTQ 4-bit/);
  d = writeQuantDir(join(tmp, "c"), config, awq, drop(`${Q_PROJ}.scales`)).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.qweight has no model\.layers\.0\.self_attn\.q_proj\.scales/);
  d = writeQuantDir(join(tmp, "d"), config, gptq, drop(`${Q_PROJ}.qzeros`)).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /has no .*q_proj\.qzeros/);
  d = writeQuantDir(join(tmp, "e"), config, { ...gptq, descAct: true }, drop(`${Q_PROJ}.g_idx`)).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.g_idx is missing/, /desc_act/);
  d = writeQuantDir(join(tmp, "f"), config, gptq, (ts) => ts.map((x) => (x.name === `${Q_PROJ}.qweight` ? { ...x, dtype: "f32", data: new Float32Array(x.data.length) } : x))).dir;
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.qweight has dtype F32/);
  d = writeQuantDir(join(tmp, "g"), config, gptq, (ts) => ts.map((x) => (x.name === `${Q_PROJ}.g_idx` ? ({ ...x, data: arrayOf(x).map(() => 9) } as Tensor) : x))).dir;
  const ck = openCheckpoint(d); // g_idx values are checked when the weight is read
  expectError(() => ck.readF32("blk.0.attn_q.weight"), CheckpointError, st(d), /g_idx\[0\] = 9 is not a group index in \[0, 2\)/);
  ck.close();
  // packed tensors without a quantization_config
  d = writeQuantDir(join(tmp, "h"), config, awq).dir;
  writeFileSync(join(d, "config.json"), JSON.stringify(hfConfigJson(config)));
  expectError(() => openCheckpoint(d), CheckpointError, st(d), /q_proj\.qweight, but config\.json has no quantization_config/);
});

test("unsupported quantization_config values are ConfigErrors naming the file, the field and what is supported", (t) => {
  const tmp = tempDir(t);
  const config = smallConfig();
  const awq = quantizationConfig({ method: "awq", bits: 4, groupSize: 16 });
  const gptq = quantizationConfig({ method: "gptq", bits: 4, groupSize: 16 });
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ ...gptq, bits: 5 }, "quantization_config.bits", /5 bits is not supported for GPTQ/],
    [{ ...awq, bits: 8 }, "quantization_config.bits", /8 bits is not supported for AWQ/],
    [{ ...awq, version: "gemv" }, "quantization_config.version", /"gemv"/],
    [{ ...awq, version: "exllama" }, "quantization_config.version", /"exllama"/],
    [{ ...awq, zero_point: false }, "quantization_config.zero_point", /without zero points/],
    [{ ...awq, backend: "llm-awq" }, "quantization_config.backend", /"llm-awq"/],
    [{ ...gptq, checkpoint_format: "marlin" }, "quantization_config.checkpoint_format", /"marlin"/],
    [{ ...gptq, is_marlin_format: true }, "quantization_config.is_marlin_format", /Marlin/],
    [{ ...gptq, group_size: 0 }, "quantization_config.group_size", /positive integer or -1/],
    [{ quant_method: "bitsandbytes", load_in_4bit: true }, "quantization_config.quant_method", /"bitsandbytes" is not supported/],
  ];
  cases.forEach(([qc, field, re], i) => {
    const d = writeQuantDir(join(tmp, `c${i}`), config, { method: "awq", bits: 4, groupSize: 16 }, (ts) => ts, qc).dir;
    assert.throws(() => openCheckpoint(d), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${field}: expected ConfigError, got ${String(e)}`);
      assert.equal(e.field, field);
      assert.equal(e.file, join(d, "config.json"));
      assert.match(e.message, re);
      assert.match(e.message, /llmrt reads "awq" .* and "gptq"/);
      return true;
    });
  });
});

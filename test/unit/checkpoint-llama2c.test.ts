import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { layerTensor } from "../../src/checkpoint/names.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { CheckpointError } from "../../src/errors.js";
import { randomTensors, smallConfig, tempDir } from "./checkpoint-util.js";

/**
 * An independent llama2.c writer following export.py literally (legacy_export,
 * version1_export, version2_export), so the reader is checked against the format and
 * not against itself.
 */
function writeLlama2c(file: string, version: 0 | 1 | 2, c: ModelConfig, w: Map<string, Float32Array>, groupSize = 32): void {
  const shared = c.tieWordEmbeddings;
  const parts: Buffer[] = [];
  const ints = (...xs: number[]) => parts.push(Buffer.from(new Int32Array(xs).buffer));
  const f32 = (x: Float32Array) => parts.push(Buffer.from(new Float32Array(x).buffer));
  const L = [...Array(c.numLayers).keys()];
  const layers = (t: Parameters<typeof layerTensor>[1]) => L.map((l) => w.get(layerTensor(l, t))!);
  const params = [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads];
  const matrices = [
    w.get("token_embd.weight")!,
    ...layers("attn_q.weight"), ...layers("attn_k.weight"), ...layers("attn_v.weight"), ...layers("attn_output.weight"),
    ...layers("ffn_gate.weight"), ...layers("ffn_down.weight"), ...layers("ffn_up.weight"),
    ...(shared ? [] : [w.get("output.weight")!]),
  ];
  if (version === 0) {
    ints(...params, shared ? c.vocabSize : -c.vocabSize, c.maxPositionEmbeddings);
    f32(w.get("token_embd.weight")!);
    layers("attn_norm.weight").forEach(f32);
    [...layers("attn_q.weight"), ...layers("attn_k.weight"), ...layers("attn_v.weight"), ...layers("attn_output.weight")].forEach(f32);
    layers("ffn_norm.weight").forEach(f32);
    [...layers("ffn_gate.weight"), ...layers("ffn_down.weight"), ...layers("ffn_up.weight")].forEach(f32);
    f32(w.get("output_norm.weight")!);
    f32(new Float32Array(c.maxPositionEmbeddings * (c.headDim / 2) * 2)); // freq_cis_real + imag
    if (!shared) f32(w.get("output.weight")!);
  } else {
    const head = Buffer.alloc(256);
    head.writeUInt32LE(0x616b3432, 0);
    head.writeInt32LE(version, 4);
    [...params, c.vocabSize, c.maxPositionEmbeddings].forEach((v, i) => head.writeInt32LE(v, 8 + 4 * i));
    head.writeUInt8(shared ? 1 : 0, 36);
    if (version === 2) head.writeInt32LE(groupSize, 37);
    parts.push(head);
    [...layers("attn_norm.weight"), ...layers("ffn_norm.weight"), w.get("output_norm.weight")!].forEach(f32);
    if (version === 1) matrices.forEach(f32);
    else {
      for (const m of matrices) {
        const q = new Int8Array(m.length);
        const s = new Float32Array(m.length / groupSize);
        for (let g = 0; g < s.length; g++) {
          let amax = 0;
          for (let j = 0; j < groupSize; j++) amax = Math.max(amax, Math.abs(m[g * groupSize + j]));
          s[g] = amax / 127;
          for (let j = 0; j < groupSize; j++) q[g * groupSize + j] = Math.round(m[g * groupSize + j] / s[g]);
        }
        parts.push(Buffer.from(q.buffer));
        f32(s);
      }
    }
  }
  writeFileSync(file, Buffer.concat(parts));
}

/** llama2.c tokenizer.bin: max_token_length, then {score, len, bytes} per token. */
function writeTokenizer(file: string, tokens: string[]): void {
  const parts: Buffer[] = [];
  const bodies = tokens.map((t) => Buffer.from(t, "utf8"));
  parts.push(Buffer.from(new Int32Array([Math.max(...bodies.map((b) => b.length))]).buffer));
  bodies.forEach((b, i) => {
    const h = Buffer.alloc(8);
    h.writeFloatLE(-i, 0);
    h.writeInt32LE(b.length, 4);
    parts.push(h, b);
  });
  writeFileSync(file, Buffer.concat(parts));
}

const l2cConfig = (over: Partial<ModelConfig> = {}) =>
  smallConfig({ rope: { theta: 10000, style: "interleaved", dim: 8, scaling: { type: "none" } }, numKvHeads: 2, ...over });

for (const version of [0, 1] as const) {
  for (const shared of [true, false]) {
    test(`llama2.c v${version} (${shared ? "shared" : "separate"} classifier) reads back exactly`, (t) => {
      const dir = tempDir(t);
      const config = l2cConfig({ tieWordEmbeddings: shared });
      const w = randomTensors(config);
      const file = join(dir, "model.bin");
      writeLlama2c(file, version, config, w);
      const c = openCheckpoint(file);
      t.after(() => c.close());
      assert.equal(c.format, "llama2c");
      assert.deepEqual(c.config, config);
      assert.equal(c.has("output.weight"), !shared);
      for (const [name, data] of w) assert.deepEqual(c.readF32(name), data, name);
    });
  }
}

test("llama2.c v2: int8 groups with fp32 scales are dequantized", (t) => {
  const dir = tempDir(t);
  const config = l2cConfig({ tieWordEmbeddings: false });
  const w = randomTensors(config);
  const file = join(dir, "q.bin");
  writeLlama2c(file, 2, config, w, 32);
  const c = openCheckpoint(file);
  t.after(() => c.close());
  assert.deepEqual(c.config, config);
  assert.equal(c.info("blk.0.attn_q.weight").dtype, "q8_0");
  assert.deepEqual(c.readF32("blk.1.ffn_norm.weight"), w.get("blk.1.ffn_norm.weight"));
  for (const [name, data] of w) {
    const got = c.readF32(name);
    let worst = 0;
    for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(got[i] - data[i]));
    assert.ok(worst <= 1 / 127 / 2 + 1e-6, `${name}: error ${worst} above half a step`); // |w| < 1, so step <= 1/127
  }
});

test("a directory with one checkpoint and one tokenizer is recognised by content, not by name", (t) => {
  const dir = tempDir(t);
  const config = l2cConfig({ vocabSize: 300, tieWordEmbeddings: true });
  writeLlama2c(join(dir, "weights.dat"), 0, config, randomTensors(config));
  writeTokenizer(join(dir, "vocab.stuff"), Array.from({ length: 300 }, (_, i) => `t${i}`));
  writeTokenizer(join(dir, "other-vocab.bin"), ["a", "b"]); // wrong size: not this model's
  writeFileSync(join(dir, "notes.txt"), "hello");
  const c = openCheckpoint(dir);
  t.after(() => c.close());
  assert.equal(c.path, join(dir, "weights.dat"));
  assert.deepEqual(c.tokenizer, { kind: "llama2c", file: join(dir, "vocab.stuff") });
  const direct = openCheckpoint(join(dir, "weights.dat"));
  assert.deepEqual(direct.tokenizer, c.tokenizer);
  direct.close();
});

test("llama2.c errors: truncated file, two checkpoints, a tokenizer passed as model", (t) => {
  const dir = tempDir(t);
  const config = l2cConfig();
  const w = randomTensors(config);
  const a = join(dir, "a.bin");
  writeLlama2c(a, 0, config, w);
  const bytes = readFileSync(a);
  const cut = join(dir, "cut.bin");
  writeFileSync(cut, bytes.subarray(0, bytes.length - 4));
  assert.throws(() => openCheckpoint(cut), (e: unknown) => e instanceof CheckpointError && e.message.includes(cut) && /implies \d+ bytes but the file has \d+/.test(e.message) && /truncated/.test(e.message));
  writeLlama2c(join(dir, "b.bin"), 1, config, w);
  assert.throws(() => openCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && /2 llama2\.c checkpoints \(a\.bin, b\.bin\)/.test(e.message));
  const tok = join(dir, "tok.bin");
  writeTokenizer(tok, ["x", "y"]);
  assert.throws(() => openCheckpoint(tok), (e: unknown) => e instanceof CheckpointError && /tokenizer, not a model/.test(e.message));
  const bad = join(dir, "bad.bin");
  const h = Buffer.from(bytes.subarray(0, 256));
  h.writeInt32LE(-5, 0); // dim -5
  writeFileSync(bad, h);
  assert.throws(() => openCheckpoint(bad), (e: unknown) => e instanceof CheckpointError && e.message.includes(bad));
  const v9 = join(dir, "v9.bin");
  const hv = Buffer.alloc(300);
  hv.writeUInt32LE(0x616b3432, 0);
  hv.writeInt32LE(9, 4);
  writeFileSync(v9, hv);
  assert.throws(() => openCheckpoint(v9), (e: unknown) => e instanceof CheckpointError && /version 9 is not supported/.test(e.message));
});

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CheckpointError, ConfigError, UnsupportedModelError } from "../../src/errors.js";
import { f32ArrayToBf16, bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16 } from "../../src/checkpoint/fp16.js";
import { parseHfConfig } from "../../src/checkpoint/hf-config.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { permuteQkInterleavedToNeox } from "../../src/checkpoint/rope-permute.js";
import { SafetensorsFile } from "../../src/checkpoint/safetensors-file.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { writeSafetensors } from "../../src/checkpoint/write-safetensors.js";
import { assertClose, randomTensors, seeded, smallConfig, tempDir } from "./checkpoint-util.js";

test("safetensors round-trips f32 exactly and f16/bf16 as their rounding", (t) => {
  const dir = tempDir(t);
  const x = seeded(6 * 5, 3);
  const file = join(dir, "a.safetensors");
  writeSafetensors(file, [
    { name: "a", dtype: "f32", shape: [6, 5], data: x },
    { name: "b", dtype: "f16", shape: [30], data: x },
    { name: "c", dtype: "bf16", shape: [5, 6], data: x },
  ], { format: "pt" });
  const st = SafetensorsFile.open(file);
  t.after(() => st.close());
  assert.deepEqual(st.metadata, { format: "pt" });
  assert.deepEqual(st.entries.get("c")!.shape, [5, 6]);
  assert.deepEqual(st.readF32("a"), x);
  assert.deepEqual(st.readF32("b"), f16ArrayToF32(f32ArrayToF16(x)));
  assert.deepEqual(st.readF32("c"), bf16ArrayToF32(f32ArrayToBf16(x)));
  assert.equal(st.entries.get("a")!.offset % 8, 0, "data section starts 8-aligned");
});

for (const dtype of ["f32", "f16", "bf16"] as const) {
  test(`HF directory round trip (${dtype}): config and tensors`, (t) => {
    const dir = tempDir(t);
    const config = smallConfig();
    const w = randomTensors(config);
    writeHfCheckpoint(dir, config, w, { dtype });
    const c = openCheckpoint(dir);
    t.after(() => c.close());
    assert.equal(c.format, "safetensors");
    assert.deepEqual(c.config, config);
    assert.deepEqual(c.tokenizer, { kind: "none" });
    assert.equal(c.info("blk.1.ffn_down.weight").dtype, dtype);
    const tol = dtype === "f32" ? 0 : dtype === "f16" ? 1e-3 : 1e-2;
    for (const [name, data] of w) assertClose(c.readF32(name), data, tol, name);
  });
}

test("HF writer moves interleaved q/k to neox; tied head has no lm_head", (t) => {
  const dir = tempDir(t);
  const config = smallConfig({ rope: { theta: 10000, style: "interleaved", dim: 8, scaling: { type: "none" } }, tieWordEmbeddings: true });
  const w = randomTensors(config);
  writeHfCheckpoint(dir, config, w);
  const st = SafetensorsFile.open(join(dir, "model.safetensors"));
  assert.ok(!st.entries.has("lm_head.weight"));
  st.close();
  const c = openCheckpoint(dir);
  t.after(() => c.close());
  assert.equal(c.config.rope.style, "neox");
  assert.equal(c.config.tieWordEmbeddings, true);
  assert.ok(!c.has("output.weight"));
  assert.deepEqual(c.readF32("blk.0.attn_q.weight"), permuteQkInterleavedToNeox(w.get("blk.0.attn_q.weight")!, 4, 8));
  assert.deepEqual(c.readF32("blk.1.attn_k.weight"), permuteQkInterleavedToNeox(w.get("blk.1.attn_k.weight")!, 2, 8));
  assert.deepEqual(c.readF32("blk.1.attn_v.weight"), w.get("blk.1.attn_v.weight"));
});

test("sharded directory with model.safetensors.index.json", (t) => {
  const dir = tempDir(t);
  const config = smallConfig({ architecture: "qwen2", attentionBias: true });
  const w = randomTensors(config);
  writeHfCheckpoint(dir, config, w, { shardBytes: 20_000 });
  const c = openCheckpoint(dir);
  t.after(() => c.close());
  assert.deepEqual(c.config, config);
  for (const [name, data] of w) assert.deepEqual(c.readF32(name), data, name);
});

test("qwen3 (q/k norm), mistral (sliding window) and llama3 rope scaling survive the HF round trip", (t) => {
  for (const over of [
    { architecture: "qwen3" as const, qkNorm: true, headDim: 16, rope: { theta: 1e6, style: "neox" as const, dim: 16, scaling: { type: "none" as const } } },
    { architecture: "mistral" as const, slidingWindow: 64, eosTokenIds: [2, 7] },
    { rope: { theta: 500000, style: "neox" as const, dim: 8, scaling: { type: "llama3" as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } } },
    { architecture: "qwen2" as const, attentionBias: true, slidingWindow: 32 },
  ]) {
    const dir = tempDir(t);
    const config = smallConfig(over);
    writeHfCheckpoint(dir, config, randomTensors(config));
    const c = openCheckpoint(dir);
    assert.deepEqual(c.config, config);
    c.close();
  }
});

test("config.json parsing: defaults, eos merge, rope scaling, sliding windows", () => {
  const base = { architectures: ["LlamaForCausalLM"], vocab_size: 10, hidden_size: 64, intermediate_size: 100, num_hidden_layers: 2, num_attention_heads: 8 };
  const c = parseHfConfig(base, "config.json", { eos_token_id: [5, 6] });
  assert.equal(c.numKvHeads, 8);
  assert.equal(c.headDim, 8);
  assert.equal(c.rope.theta, 10000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.maxPositionEmbeddings, 2048);
  assert.equal(c.tieWordEmbeddings, false);
  assert.deepEqual(c.eosTokenIds, [5, 6]);
  assert.deepEqual(parseHfConfig({ ...base, eos_token_id: 2 }, "config.json", { eos_token_id: [6, 2] }).eosTokenIds, [6, 2]);
  assert.deepEqual(parseHfConfig({ ...base, rope_scaling: { type: "linear", factor: 2 } }, "c").rope.scaling, { type: "linear", factor: 2 });
  assert.deepEqual(parseHfConfig({ ...base, rope_scaling: { rope_type: "default" } }, "c").rope.scaling, { type: "none" });
  assert.equal(parseHfConfig({ ...base, partial_rotary_factor: 0.5 }, "c").rope.dim, 4);
  assert.throws(() => parseHfConfig({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } }, "c"), UnsupportedModelError);
  // Mistral's default window is 4096 when the key is absent, none when null.
  const mistral = { ...base, architectures: ["MistralForCausalLM"] };
  assert.equal(parseHfConfig(mistral, "c").slidingWindow, 4096);
  assert.equal(parseHfConfig({ ...mistral, sliding_window: null }, "c").slidingWindow, null);
  // Qwen2: only with use_sliding_window, and only when it covers every layer.
  const qwen = { ...base, architectures: ["Qwen2ForCausalLM"], sliding_window: 128 };
  assert.equal(parseHfConfig(qwen, "c").slidingWindow, null);
  assert.equal(parseHfConfig(qwen, "c").attentionBias, true);
  assert.equal(parseHfConfig({ ...qwen, use_sliding_window: true, max_window_layers: 28 }, "c").slidingWindow, null);
  assert.equal(parseHfConfig({ ...qwen, use_sliding_window: true, max_window_layers: 0 }, "c").slidingWindow, 128);
  assert.throws(() => parseHfConfig({ ...qwen, use_sliding_window: true, max_window_layers: 1 }, "c"), UnsupportedModelError);
});

test("config.json errors name the file and field", () => {
  assert.throws(
    () => parseHfConfig({ architectures: ["GPT2LMHeadModel"] }, "/m/config.json"),
    (e: unknown) => e instanceof UnsupportedModelError && /GPT2LMHeadModel/.test(e.message) && /LlamaForCausalLM/.test(e.message) && /qwen3/.test(e.message),
  );
  assert.throws(
    () => parseHfConfig({ architectures: ["LlamaForCausalLM"], vocab_size: 10, intermediate_size: 5, num_hidden_layers: 1, num_attention_heads: 2 }, "/m/config.json"),
    (e: unknown) => e instanceof ConfigError && e.field === "hidden_size" && e.message.includes("/m/config.json"),
  );
});

test("a missing lm_head.weight means tied even when the config says otherwise", (t) => {
  const dir = tempDir(t);
  const config = smallConfig({ tieWordEmbeddings: true });
  writeHfCheckpoint(dir, config, randomTensors(config));
  const json = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  json.tie_word_embeddings = false;
  writeFileSync(join(dir, "config.json"), JSON.stringify(json));
  const c = openCheckpoint(dir);
  assert.equal(c.config.tieWordEmbeddings, true);
  c.close();
});

function expectCheckpointError(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test("corrupt safetensors files give CheckpointErrors naming the file and problem", (t) => {
  const dir = tempDir(t);
  const good = join(dir, "good.safetensors");
  writeSafetensors(good, [{ name: "a", dtype: "f32", shape: [4, 4], data: seeded(16, 1) }]);
  const bytes = readFileSync(good);
  const write = (name: string, b: Uint8Array) => {
    const p = join(dir, name);
    writeFileSync(p, b);
    return p;
  };
  const truncated = write("truncated.safetensors", bytes.subarray(0, bytes.length - 10));
  expectCheckpointError(() => SafetensorsFile.open(truncated), truncated, /run past the end/);
  const short = write("short.safetensors", bytes.subarray(0, 5));
  expectCheckpointError(() => SafetensorsFile.open(short), short, /too short/);
  const lying = Buffer.from(bytes);
  lying.writeBigUInt64LE(1n << 40n, 0);
  const lyingPath = write("lying.safetensors", lying);
  expectCheckpointError(() => SafetensorsFile.open(lyingPath), lyingPath, /header length 1099511627776 runs past the end/);
  const header = (h: object) => {
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, Buffer.alloc(64)]);
  };
  const unknown = write("dtype.safetensors", header({ a: { dtype: "Q7", shape: [4], data_offsets: [0, 16] } }));
  expectCheckpointError(() => SafetensorsFile.open(unknown), unknown, /unknown dtype "Q7"/);
  const badSize = write("size.safetensors", header({ a: { dtype: "F32", shape: [4], data_offsets: [0, 12] } }));
  expectCheckpointError(() => SafetensorsFile.open(badSize), badSize, /needs 16 bytes/);
  const notJson = Buffer.from(bytes);
  notJson[9] = 0x01;
  const notJsonPath = write("json.safetensors", notJson);
  expectCheckpointError(() => SafetensorsFile.open(notJsonPath), notJsonPath, /not valid JSON/);
});

test("an HF directory without config.json, or with mismatched weights, is a CheckpointError", (t) => {
  const dir = tempDir(t);
  writeSafetensors(join(dir, "model.safetensors"), [{ name: "model.norm.weight", dtype: "f32", shape: [4], data: seeded(4, 1) }]);
  expectCheckpointError(() => openCheckpoint(dir), dir, /no config.json/);
  const config = smallConfig();
  writeHfCheckpoint(dir, config, randomTensors(config));
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), num_hidden_layers: 3 }));
  expectCheckpointError(() => openCheckpoint(dir), dir, /missing .* blk\.2\.attn_norm\.weight/);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), num_hidden_layers: 2, intermediate_size: 65 }));
  expectCheckpointError(() => openCheckpoint(dir), dir, /blk\.0\.ffn_gate\.weight is \[64, 32\], config implies \[65, 32\]/);
});

test("openCheckpoint: missing path, empty or ambiguous directory, unrecognised file", (t) => {
  const dir = tempDir(t);
  const missing = join(dir, "nope");
  expectCheckpointError(() => openCheckpoint(missing), missing, /no such file or directory/);
  expectCheckpointError(() => openCheckpoint(dir), dir, /no model found: looked for .*config\.json.*GGUF.*llama2\.c/);
  const txt = join(dir, "notes.txt");
  writeFileSync(txt, "just some text, not a model at all");
  expectCheckpointError(() => openCheckpoint(txt), txt, /format not recognised/);
  writeFileSync(join(dir, "a.gguf"), "GGUF");
  writeFileSync(join(dir, "b.gguf"), "GGUF");
  expectCheckpointError(() => openCheckpoint(dir), dir, /2 GGUF files \(a\.gguf, b\.gguf\)/);
});

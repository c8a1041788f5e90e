import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CheckpointError, UnsupportedModelError } from "../../src/errors.js";
import { ModelFile } from "../../src/checkpoint/file-io.js";
import { f16ArrayToF32, f32ArrayToF16 } from "../../src/checkpoint/fp16.js";
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from "../../src/checkpoint/ggml-quants.js";
import { readGgufHeader } from "../../src/checkpoint/gguf-file.js";
import { GgufArray, openGguf, readGgufMetadata } from "../../src/checkpoint/gguf.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { permuteQkInterleavedToNeox } from "../../src/checkpoint/rope-permute.js";
import { readTensorF32 } from "../../src/checkpoint/tensor-data.js";
import { gguf, writeGguf } from "../../src/checkpoint/write-gguf.js";
import { byteLevelSpmVocab, writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { assertClose, randomTensors, seeded, smallConfig, tempDir } from "./checkpoint-util.js";

const META = {
  "general.architecture": "llama",
  "t.u8": gguf.u8(200),
  "t.i8": gguf.i8(-100),
  "t.u16": gguf.u16(60000),
  "t.i16": gguf.i16(-30000),
  "t.u32": gguf.u32(4_000_000_000),
  "t.i32": gguf.i32(-2_000_000_000),
  "t.f32": gguf.f32(1e-5),
  "t.bool": true,
  "t.string": "héllo ✓",
  "t.u64": gguf.u64(2n ** 60n),
  "t.i64": gguf.i64(-5),
  "t.f64": gguf.f64(Math.PI),
  "t.strings": gguf.arr("string", ["a", "", "ünï"]),
  "t.floats": gguf.arr("f32", [0.5, -1.25]),
  "t.ints": gguf.arr("i32", [-1, 2, 3]),
  "t.nested": { type: "array", itemType: "array", value: [gguf.arr("u8", [1, 2]), gguf.arr("string", ["x"])] },
} as const;

for (const version of [2, 3] as const) {
  test(`GGUF v${version}: every metadata type and tensor dtype round-trips`, (t) => {
    const dir = tempDir(t);
    const file = join(dir, "m.gguf");
    const x = seeded(4 * 64, version);
    writeGguf(file, META, [
      { name: "f32", shape: [4, 64], dtype: "f32", data: x },
      { name: "f16", shape: [4, 64], dtype: "f16", data: x },
      { name: "bf16", shape: [4, 64], dtype: "bf16", data: x },
      { name: "q8", shape: [4, 64], dtype: "q8_0", data: x },
      { name: "q4", shape: [4, 64], dtype: "q4_0", data: x },
    ], { version, alignment: 64 });
    const m = readGgufMetadata(file);
    assert.equal(m.version, version);
    assert.equal(m.tensorCount, 5);
    assert.equal(m.number("t.u8"), 200);
    assert.equal(m.number("t.i8"), -100);
    assert.equal(m.number("t.u16"), 60000);
    assert.equal(m.number("t.i16"), -30000);
    assert.equal(m.number("t.u32"), 4_000_000_000);
    assert.equal(m.number("t.i32"), -2_000_000_000);
    assert.equal(m.number("t.f32"), 1e-5); // stored as f32, read back as the decimal it came from
    assert.equal(m.bool("t.bool"), true);
    assert.equal(m.string("t.string"), "héllo ✓");
    assert.equal(m.get("t.u64"), 2n ** 60n);
    assert.equal(m.number("t.i64"), -5);
    assert.equal(m.number("t.f64"), Math.PI);
    assert.equal(m.number("general.alignment"), 64);
    assert.equal(m.type("t.u16"), "u16");
    assert.deepEqual(m.strings("t.strings"), ["a", "", "ünï"]);
    assert.deepEqual(m.numbers("t.floats"), [0.5, -1.25]);
    assert.deepEqual(m.numbers("t.ints"), [-1, 2, 3]);
    assert.equal(m.array("t.ints")!.at(1), 2);
    const nested = m.array("t.nested")!.toArray() as GgufArray[];
    assert.deepEqual(nested.map((a) => a.toArray()), [[1, 2], ["x"]]);
    assert.throws(() => m.string("t.u8"), (e: unknown) => e instanceof CheckpointError && /t\.u8 is u8, expected a string/.test(e.message));

    // Tensors through the low-level header (no model config needed).
    const f = new ModelFile(file);
    t.after(() => f.close());
    const h = readGgufHeader(f);
    assert.equal(h.alignment, 64);
    const read = (name: string) => {
      const ti = h.tensors.find((x) => x.name === name)!;
      assert.equal(ti.offset % 64, 0);
      assert.deepEqual(ti.dims, [64, 4]);
      return readTensorF32({ file: f, offset: ti.offset, dtype: ti.dtype!, shape: [...ti.dims].reverse(), name });
    };
    assert.deepEqual(read("f32"), x);
    assert.deepEqual(read("f16"), f16ArrayToF32(f32ArrayToF16(x)));
    assertClose(read("bf16"), x, 1e-2, "bf16");
    assert.deepEqual(read("q8"), dequantizeQ8_0(quantizeQ8_0(x), new Float32Array(x.length)));
    assert.deepEqual(read("q4"), dequantizeQ4_0(quantizeQ4_0(x), new Float32Array(x.length)));
  });
}

for (const dtype of ["f32", "f16", "q8_0", "q4_0"] as const) {
  test(`llama model GGUF (${dtype}) opens as the same model, q/k stored interleaved`, (t) => {
    const dir = tempDir(t);
    const file = join(dir, "model.gguf");
    const config = smallConfig({ intermediateSize: 48 }); // 48: ffn_down rows fall back to F16 for Q8_0/Q4_0
    const w = randomTensors(config);
    writeModelGguf(file, config, w, { dtype });
    const c = openCheckpoint(file);
    t.after(() => c.close());
    assert.equal(c.format, "gguf");
    assert.deepEqual(c.tokenizer, { kind: "gguf", file });
    assert.deepEqual(c.config, { ...config, rope: { ...config.rope, style: "interleaved" } });
    assert.equal(c.info("blk.0.attn_norm.weight").dtype, "f32");
    assert.equal(c.info("blk.0.ffn_down.weight").dtype, dtype === "f32" ? "f32" : "f16");
    assert.equal(c.info("blk.0.ffn_up.weight").dtype, dtype);
    assert.deepEqual(c.info("blk.0.ffn_up.weight").shape, [48, 32]);
    const tol = { f32: 0, f16: 1e-3, q8_0: 1e-2, q4_0: 0.15 }[dtype];
    for (const [name, data] of w) {
      let got = c.readF32(name);
      if (name.endsWith("attn_q.weight")) got = permuteQkInterleavedToNeox(got, 4, 8);
      if (name.endsWith("attn_k.weight")) got = permuteQkInterleavedToNeox(got, 2, 8);
      assertClose(got, data, tol, name);
    }
  });
}

test("qwen2 / qwen3 GGUFs keep neox q/k; biases, q/k norms and sliding window round-trip", (t) => {
  for (const over of [
    { architecture: "qwen2" as const, attentionBias: true, tieWordEmbeddings: true, eosTokenIds: [2, 5, 9] },
    { architecture: "qwen3" as const, qkNorm: true, headDim: 16, rope: { theta: 1e6, style: "neox" as const, dim: 16, scaling: { type: "none" as const } } },
    { architecture: "qwen2" as const, attentionBias: true, slidingWindow: 64, rope: { theta: 1e6, style: "neox" as const, dim: 8, scaling: { type: "linear" as const, factor: 4 } } },
  ]) {
    const dir = tempDir(t);
    const file = join(dir, "q.gguf");
    const config = smallConfig(over);
    const w = randomTensors(config);
    writeModelGguf(file, config, w, { version: 2 });
    const c = openCheckpoint(file);
    assert.deepEqual(c.config, config);
    for (const [name, data] of w) assert.deepEqual(c.readF32(name), data, name);
    c.close();
  }
});

test("llama3 RoPE scaling travels as rope_freqs.weight and comes back as parameters", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "l3.gguf");
  const scaling = { type: "llama3" as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  const config = smallConfig({ headDim: 64, numHeads: 2, numKvHeads: 1, hiddenSize: 128, rope: { theta: 500000, style: "interleaved", dim: 64, scaling } });
  writeModelGguf(file, config, randomTensors(config));
  const c = openCheckpoint(file);
  t.after(() => c.close());
  assert.ok(!c.has("rope_freqs.weight"));
  const s = c.config.rope.scaling;
  assert.equal(s.type, "llama3");
  if (s.type !== "llama3") return;
  assert.equal(s.factor, 32);
  assert.equal(s.originalMaxPositionEmbeddings, 8192);
  assert.ok(Math.abs(s.lowFreqFactor - 1) < 1e-3 && Math.abs(s.highFreqFactor - 4) < 1e-3, JSON.stringify(s));
});

test("a vocab-only GGUF opens with readGgufMetadata; openCheckpoint explains it has no weights", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "vocab.gguf");
  const v = byteLevelSpmVocab(300);
  writeGguf(file, {
    "general.architecture": "llama",
    "tokenizer.ggml.model": "llama",
    "tokenizer.ggml.tokens": gguf.arr("string", v.tokens),
    "tokenizer.ggml.scores": gguf.arr("f32", v.scores!),
    "tokenizer.ggml.token_type": gguf.arr("i32", v.types!),
    "tokenizer.chat_template": "{{ messages }}",
  }, []);
  const m = readGgufMetadata(file);
  assert.equal(m.tensorCount, 0);
  assert.equal(m.strings("tokenizer.ggml.tokens")![3], "<0x00>");
  assert.equal(m.numbers("tokenizer.ggml.token_type")![3], 6);
  assert.equal(m.string("tokenizer.chat_template"), "{{ messages }}");
  assert.throws(() => openCheckpoint(file), (e: unknown) => e instanceof CheckpointError && /vocab-only/.test(e.message));
});

test("unsupported GGUF architectures and tensor types are UnsupportedModelErrors", (t) => {
  const dir = tempDir(t);
  const gpt2 = join(dir, "gpt2.gguf");
  writeGguf(gpt2, { "general.architecture": "gpt2" }, [{ name: "token_embd.weight", shape: [4, 32], dtype: "f32", data: seeded(128, 1) }]);
  assert.throws(() => openGguf(gpt2), (e: unknown) => e instanceof UnsupportedModelError && /"gpt2"/.test(e.message) && /qwen3/.test(e.message));
  const split = join(dir, "split-00001-of-00002.gguf");
  writeGguf(split, { "general.architecture": "llama", "split.no": gguf.u16(0), "split.count": gguf.u16(2) }, [{ name: "token_embd.weight", shape: [4, 32], dtype: "f32", data: seeded(128, 1) }]);
  assert.throws(() => openGguf(split), (e: unknown) => e instanceof UnsupportedModelError && /part 1 of a 2-file split GGUF/.test(e.message));
  // A model whose attn_q is Q3_K (ggml type 11): patch the type id of a written Q4_0 tensor.
  const file = join(dir, "k.gguf");
  const config = smallConfig();
  writeModelGguf(file, config, randomTensors(config), { dtype: "q4_0" });
  const b = readFileSync(file);
  const at = b.indexOf("blk.0.attn_q.weight") + "blk.0.attn_q.weight".length + 4 + 16; // after n_dims and 2 dims
  assert.equal(b.readUInt32LE(at), 2);
  b.writeUInt32LE(11, at);
  writeFileSync(file, b);
  assert.throws(() => openGguf(file), (e: unknown) => e instanceof UnsupportedModelError && /blk\.0\.attn_q\.weight is Q3_K/.test(e.message));
});

/** A tiny valid GGUF to corrupt: 1 metadata key, 1 tensor. */
function tinyGguf(file: string): Buffer {
  writeGguf(file, { "general.architecture": "llama" }, [{ name: "w", shape: [2, 32], dtype: "f32", data: seeded(64, 1) }]);
  return readFileSync(file);
}

function expectCheckpointError(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test("corrupt GGUF files give CheckpointErrors, never huge allocations", (t) => {
  const dir = tempDir(t);
  const good = tinyGguf(join(dir, "good.gguf"));
  const keyLen = "general.architecture".length;
  const kvEnd = 24 + 8 + keyLen + 4 + 8 + "llama".length; // header, key, type, value
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ["magic", (b) => (b.write("GGUX", 0, "latin1"), b), /not a GGUF file/],
    ["v1", (b) => (b.writeUInt32LE(1, 4), b), /version 1 is not supported/],
    ["v99", (b) => (b.writeUInt32LE(99, 4), b), /unsupported GGUF version 99/],
    ["bigendian", (b) => (b.writeUInt32BE(3, 4), b), /big-endian/],
    ["tensorcount", (b) => (b.writeBigUInt64LE(2n ** 40n, 8), b), /tensor count 1099511627776 is impossible/],
    ["tensorcount64", (b) => (b.writeBigUInt64LE(2n ** 63n, 8), b), /tensor count is 9223372036854775808/],
    ["kvcount", (b) => (b.writeBigUInt64LE(2n ** 40n, 16), b), /metadata count 1099511627776 is impossible/],
    ["keylength", (b) => (b.writeBigUInt64LE(2n ** 40n, 24), b), /string length 1099511627776 .* runs past the end/],
    ["valuelength", (b) => (b.writeBigUInt64LE(2n ** 40n, 24 + 8 + keyLen + 4), b), /general\.architecture: string length 1099511627776/],
    ["valuetype", (b) => (b.writeUInt32LE(77, 24 + 8 + keyLen), b), /unknown value type 77/],
    ["ndims", (b) => (b.writeUInt32LE(9, kvEnd + 8 + 1), b), /9 dimensions/],
    ["offset", (b) => (b.writeBigUInt64LE(1n << 20n, kvEnd + 8 + 1 + 4 + 16 + 4), b), /offset 1048576 is past the end|runs past the end/],
    ["truncated", (b) => b.subarray(0, b.length - 100), /runs past the end of the file/],
    ["counts-cut", (b) => b.subarray(0, 30), /metadata count 1 is impossible for a file of 30 bytes/],
    ["value-cut", (b) => b.subarray(0, 60), /needs bytes 56\.\.64 but the file has only 60 bytes/],
    ["tiny", (b) => b.subarray(0, 10), /too short/],
  ];
  for (const [name, corrupt, re] of cases) {
    const p = join(dir, `${name}.gguf`);
    writeFileSync(p, corrupt(Buffer.from(good)));
    expectCheckpointError(() => openGguf(p), p, re);
  }
  const notGguf = join(dir, "magic.gguf");
  expectCheckpointError(() => openCheckpoint(notGguf), notGguf, /format not recognised/);
  const arr = join(dir, "array.gguf");
  writeGguf(arr, { "tokenizer.ggml.tokens": gguf.arr("string", ["a", "b"]) }, []);
  const b = readFileSync(arr);
  b.writeBigUInt64LE(2n ** 40n, 24 + 8 + "tokenizer.ggml.tokens".length + 4 + 4); // the array count
  writeFileSync(arr, b);
  expectCheckpointError(() => readGgufMetadata(arr), arr, /array of 1099511627776 string items cannot fit/);
});

/**
 * GGUF K-quants (Q4_K, Q5_K, Q6_K): hand-built super-blocks dequantize to values worked
 * out by hand from ggml's layout, the test writer's blocks round-trip within bounds that
 * follow from its rounding, GGUF files with these tensors (odd row counts) read back as
 * written, truncated or impossible tensors are CheckpointErrors naming the tensor, and a
 * reference engine built from such a GGUF keeps the blocks packed and runs as the
 * dequantized reading does.
 * Agreement with llama.cpp itself is in test/compat/llamacpp.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError } from "../../src/errors.js";
import { KQUANTS, KQUANT_DTYPES, QK_K, dequantizeKQuant, type KQuantDType } from "../../src/checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../../src/checkpoint/ggml-kquants-write.js";
import { ModelFile } from "../../src/checkpoint/file-io.js";
import { openGguf } from "../../src/checkpoint/gguf.js";
import { readGgufHeader } from "../../src/checkpoint/gguf-file.js";
import { readTensorF32, readTensorRaw } from "../../src/checkpoint/tensor-data.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { permuteQkInterleavedToNeox } from "../../src/checkpoint/rope-permute.js";
import { writeGguf } from "../../src/checkpoint/write-gguf.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { decodeEntry } from "../../src/engine/packed-weights.js";
import { compareModels } from "../../src/eval/metrics.js";
import { assertClose, randomTensors, seeded, smallConfig, tempDir } from "./checkpoint-util.js";

const F16_ONE = 0x3c00;
const F16_TWO = 0x4000;
const F16_HALF = 0x3800;

function deq(dtype: KQuantDType, block: Uint8Array): Float32Array {
  return dequantizeKQuant(dtype, block, new Float32Array(QK_K));
}

/** A Q4_K / Q5_K block: d = 2, dmin = 1, scales chosen to exercise the packed high bits. */
function q45Block(dtype: "q4_k" | "q5_k"): Uint8Array {
  const b = new Uint8Array(KQUANTS[dtype].blockBytes);
  const v = new DataView(b.buffer);
  v.setUint16(0, F16_TWO, true);
  v.setUint16(2, F16_ONE, true);
  // sc0 = 0x41 & 63 = 1, sc1 = 2; m0 = 0xC5 & 63 = 5, m1 = 6;
  // sc4 = (0x21 & 15) | (0x41 >> 6) << 4 = 17, m4 = (0x21 >> 4) | (0xC5 >> 6) << 4 = 50;
  // sc5 = m5 = 0 (bytes 1, 5 and 9 have no high bits / low nibbles for them)
  b.set([0x41, 0x02, 0x03, 0x04, 0xc5, 0x06, 0x07, 0x08, 0x21, 0x00, 0x00, 0x00], 4);
  b.fill(0x73, dtype === "q4_k" ? 16 : 48); // every quant byte: low nibble 3, high nibble 7
  return b;
}

test("Q4_K hand-built block: scales and mins unpacked from 6 bits, nibbles in chunks of 64", () => {
  const y = deq("q4_k", q45Block("q4_k"));
  assert.equal(y[0], 2 * 1 * 3 - 1 * 5); // sub-block 0, low nibble
  assert.equal(y[31], 1);
  assert.equal(y[32], 2 * 2 * 7 - 1 * 6); // sub-block 1: high nibbles of the same bytes
  assert.equal(y[128], 2 * 17 * 3 - 1 * 50); // sub-block 4: 6-bit values split over two bytes
  assert.equal(y[160], 0); // sub-block 5: scale 0, min 0
  assert.equal(y[64], 2 * 3 * 3 - 1 * 7); // sub-block 2 (chunk 1, low)
});

test("Q5_K hand-built block: qh adds 16 by bit 2c (low nibbles) / 2c + 1 (high nibbles)", () => {
  const b = q45Block("q5_k");
  b[16 + 0] = 0b0001_0001; // value 0 (chunk 0 low) and value 128 (chunk 2 low)
  b[16 + 1] = 0b0000_0010; // value 33 (chunk 0 high)
  const y = deq("q5_k", b);
  assert.equal(y[0], 2 * 1 * 19 - 5);
  assert.equal(y[1], 2 * 1 * 3 - 5);
  assert.equal(y[33], 2 * 2 * 23 - 6);
  assert.equal(y[32], 2 * 2 * 7 - 6);
  assert.equal(y[128], 2 * 17 * 19 - 50);
  assert.equal(y[129], 2 * 17 * 3 - 50);
});

test("Q6_K hand-built block: ql nibbles + qh 2-bit pairs - 32, int8 scales per 16 values", () => {
  const b = new Uint8Array(210);
  new DataView(b.buffer).setUint16(208, F16_HALF, true);
  b.fill(1, 192, 208);
  b[192] = 2;
  b[193] = 0xfd; // -3
  b[0] = 0x21; // value 0: low nibble 1; value 64: high nibble 2
  b[128] = 0xe4; // qh pairs 0, 1, 2, 3 for values 0, 32, 64, 96
  b[64] = 0x0f; // second half: value 128's low nibble
  b[128 + 32] = 0x03; // ... and its high pair
  const y = deq("q6_k", b);
  assert.equal(y[0], 0.5 * 2 * ((1 | (0 << 4)) - 32));
  assert.equal(y[32], 0.5 * 1 * ((0 | (1 << 4)) - 32));
  assert.equal(y[64], 0.5 * 1 * ((2 | (2 << 4)) - 32));
  assert.equal(y[96], 0.5 * 1 * ((0 | (3 << 4)) - 32));
  assert.equal(y[16], 0.5 * -3 * -32); // sub-block 1: negative scale
  assert.equal(y[128], 0.5 * 1 * ((15 | (3 << 4)) - 32));
});

/** Worst |x - deq| as a multiple of the super-block's largest |x| (from the writer's rounding; see ggml-kquants-write.ts). */
const BOUND: Record<KQuantDType, { worst: number; rms: number }> = {
  q4_k: { worst: 0.07, rms: 0.1 }, // max(step / 2, dmin): step <= 2 amax / 15 * (1 + 1/63), dmin <= amax / 63
  q5_k: { worst: 0.035, rms: 0.05 }, // step <= 2 amax / 31 * (1 + 1/63)
  q6_k: { worst: 0.0165, rms: 0.025 }, // step <= amax / 31 * (1 + 1/127), no clamping
};

for (const dtype of KQUANT_DTYPES) {
  test(`${KQUANTS[dtype].typeName}: dequantize(quantize(x)) within its bound, odd row counts, zeros stay zero`, () => {
    for (const [rows, cols] of [[3, 256], [5, 512], [1, 768]]) {
      const x = seeded(rows * cols, rows * 100 + cols).map((v, i) => v * (1 + (i % 97) / 10)); // uneven magnitudes
      const y = dequantizeKQuant(dtype, quantizeKQuant(dtype, x), new Float32Array(x.length));
      let errSq = 0;
      let sumSq = 0;
      for (let b = 0; b < x.length / QK_K; b++) {
        let amax = 0;
        for (let i = b * QK_K; i < (b + 1) * QK_K; i++) amax = Math.max(amax, Math.abs(x[i]));
        for (let i = b * QK_K; i < (b + 1) * QK_K; i++) {
          const err = Math.abs(x[i] - y[i]);
          assert.ok(err <= BOUND[dtype].worst * amax, `[${rows}, ${cols}] value ${i}: error ${err} > ${BOUND[dtype].worst} x ${amax}`);
          errSq += err ** 2;
          sumSq += x[i] ** 2;
        }
      }
      assert.ok(Math.sqrt(errSq / sumSq) < BOUND[dtype].rms, `relative RMS error ${Math.sqrt(errSq / sumSq)}`);
    }
    assert.ok(deq(dtype, quantizeKQuant(dtype, new Float32Array(QK_K))).every((v) => v === 0));
    assert.throws(() => quantizeKQuant(dtype, new Float32Array(100)), /not a multiple of 256/);
  });
}

test("a GGUF with Q4_K / Q5_K / Q6_K tensors (odd row counts) reads back the written blocks", (t) => {
  const file = join(tempDir(t), "k.gguf");
  const shapes: Record<KQuantDType, number[]> = { q4_k: [3, 256], q5_k: [5, 512], q6_k: [7, 256] };
  const data = new Map(KQUANT_DTYPES.map((d, i) => [d, seeded(shapes[d][0] * shapes[d][1], 40 + i)]));
  writeGguf(file, { "general.architecture": "llama" }, KQUANT_DTYPES.map((d) => ({ name: d, shape: shapes[d], dtype: d, data: data.get(d)! })));
  // byte sizes as ggml's: 144 / 176 / 210 bytes per 256 values
  assert.equal(quantizeKQuant("q4_k", data.get("q4_k")!).length, 3 * 144);
  assert.equal(quantizeKQuant("q5_k", data.get("q5_k")!).length, 10 * 176);
  assert.equal(quantizeKQuant("q6_k", data.get("q6_k")!).length, 7 * 210);
  const f = new ModelFile(file);
  t.after(() => f.close());
  const header = readGgufHeader(f);
  assert.deepEqual(header.tensors.map((x) => [x.typeName, x.ggmlType]), [["Q4_K", 12], ["Q5_K", 13], ["Q6_K", 14]]);
  for (const info of header.tensors) {
    const d = info.dtype as KQuantDType;
    const loc = { file: f, offset: info.offset, dtype: d, shape: [...info.dims].reverse(), name: info.name };
    const blocks = quantizeKQuant(d, data.get(d)!);
    assert.deepEqual(readTensorRaw(loc), blocks);
    assert.deepEqual(readTensorF32(loc), dequantizeKQuant(d, blocks, new Float32Array(data.get(d)!.length)));
  }
});

for (const dtype of KQUANT_DTYPES) {
  test(`llama model GGUF (${dtype}) opens as the same model within the format's error`, (t) => {
    const file = join(tempDir(t), "model.gguf");
    // hidden 256 so every matrix is K-quantized except ffn_down (rows of 48: F16 fallback)
    const config = smallConfig({ hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 48, rope: { theta: 10000, style: "neox", dim: 64, scaling: { type: "none" } } });
    const w = randomTensors(config);
    writeModelGguf(file, config, w, { dtype });
    const c = openCheckpoint(file);
    t.after(() => c.close());
    assert.equal(c.info("blk.0.ffn_up.weight").dtype, dtype);
    assert.equal(c.info("blk.0.ffn_down.weight").dtype, "f16");
    assert.equal(c.info("token_embd.weight").dtype, dtype);
    const raw = c.readRaw!("blk.0.ffn_up.weight")!;
    assert.equal(raw.length, (48 * 256 / QK_K) * KQUANTS[dtype].blockBytes);
    assert.deepEqual(c.readF32("blk.0.ffn_up.weight"), dequantizeKQuant(dtype, raw, new Float32Array(48 * 256)));
    const tol = { q4_k: 0.2, q5_k: 0.1, q6_k: 0.05 }[dtype]; // |x| < 1
    for (const [name, data] of w) {
      let got = c.readF32(name);
      if (name.endsWith("attn_q.weight")) got = permuteQkInterleavedToNeox(got, 4, 64);
      if (name.endsWith("attn_k.weight")) got = permuteQkInterleavedToNeox(got, 2, 64);
      assertClose(got, data, tol, name);
    }
  });
}

function expectTensorError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test("truncated K-quant tensors and rows that are not whole super-blocks are CheckpointErrors naming the tensor", (t) => {
  const dir = tempDir(t);
  const file = join(dir, "t.gguf");
  writeGguf(file, { "general.architecture": "llama" }, [
    { name: "a.weight", shape: [2, 32], dtype: "q8_0", data: seeded(64, 1) },
    { name: "b.weight", shape: [3, 256], dtype: "q5_k", data: seeded(768, 2) },
  ]);
  const good = readFileSync(file);
  const cut = join(dir, "cut.gguf");
  writeFileSync(cut, good.subarray(0, good.length - 100));
  expectTensorError(() => openGguf(cut), /tensor b\.weight \(Q5_K \[3, 256\], 528 bytes at \d+\) runs past the end of the file/);
  // a.weight retyped as Q4_K (ggml type 12): 32 values per row cannot be whole super-blocks
  const lying = Buffer.from(good);
  const at = lying.indexOf("a.weight") + "a.weight".length + 4 + 16; // after n_dims and 2 dims
  assert.equal(lying.readUInt32LE(at), 8);
  lying.writeUInt32LE(12, at);
  const bad = join(dir, "bad.gguf");
  writeFileSync(bad, lying);
  expectTensorError(() => openGguf(bad), /tensor a\.weight: q4_k needs the innermost dimension to be a multiple of 256, got 32/);
});

test("GGUF Q4_K / Q5_K / Q6_K stay packed in a reference engine and run as their dequantized reading", (t) => {
  const dir = tempDir(t);
  const config = smallConfig({ hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 512, rope: { theta: 10000, style: "neox", dim: 64, scaling: { type: "none" } } });
  for (const dtype of KQUANT_DTYPES) {
    const file = join(dir, `m-${dtype}.gguf`);
    writeModelGguf(file, config, randomTensors(config), { dtype });
    const ckpt = openCheckpoint(file);
    try {
      const m = buildEngineDir(ckpt, join(dir, `e-${dtype}`), { maxSeqs: 1, maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64 });
      const packed = m.weights.tensors.filter((e) => e.dtype === dtype);
      t.diagnostic(`${dtype}: ${m.report.packed}`);
      assert.ok(packed.length >= 4 * config.numLayers, `${packed.length} tensors packed as ${dtype}`);
      assert.match(m.report.packed!, new RegExp(`gguf ${dtype}`));
      // a backend that does not run the format gets float32 at load, the GGUF reading's values
      const e = packed.find((p) => p.name.endsWith("ffn_down.weight"))!;
      const bytes = new Uint8Array(readFileSync(join(dir, `e-${dtype}`, m.weights.file)).subarray(e.offset, e.offset + e.length));
      assert.deepEqual(decodeEntry(bytes, e, false), ckpt.readF32(e.name));
      const kept = decodeEntry(bytes, e, true);
      assert.ok(!(kept instanceof Float32Array) && kept.dtype === dtype);

      const packedEngine = Engine.load(join(dir, `e-${dtype}`));
      const dense = Engine.fromCheckpoint(ckpt, { maxSeqLen: 64, maxBatchTokens: 64 }); // readF32 dequantizes
      const tokens = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % config.vocabSize);
      const r = compareModels(dense, packedEngine, tokens, { ctx: 24, stride: 24 });
      t.diagnostic(`${dtype}: max |logit diff| packed engine vs dequantized reading ${r.maxLogitDiff.toExponential(2)}`);
      assert.ok(r.maxLogitDiff < 1e-4, `${r.maxLogitDiff}`);
      assert.equal(r.top1Agreement, 1);
    } finally {
      ckpt.close();
    }
  }
});

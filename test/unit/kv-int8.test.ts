/**
 * The int8 KV cache (one float32 scale per head and slot): the reference plane's round
 * trip and copies, the byte budget, block copies on the reference and cpu backends, and
 * the cuda target refusing it.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { kvRowBytes, type Backend } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { resolveSettings } from "../../src/backends/cuda/settings.js";
import { KvPlane, quantizeHeadI8 } from "../../src/backends/reference/kv-plane.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { kvBytesPerBlock } from "../../src/api/kv-budget.js";
import { Engine } from "../../src/engine/engine.js";
import { OptionError } from "../../src/errors.js";
import type { Graph } from "../../src/graph/ir.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { randomF32 } from "./cpu-util.js";

test("int8 plane: each value reads back within half a step (max|head| / 254) of what was written", () => {
  for (const [kvHeads, headDim] of [[3, 7], [1, 13], [2, 64], [4, 1]]) {
    const kvDim = kvHeads * headDim;
    const p = new KvPlane("int8", 5, kvDim, headDim);
    assert.equal(p.bytes, 5 * kvDim + 5 * kvHeads * 4);
    for (let slot = 0; slot < 5; slot++) {
      const row = randomF32(kvDim, 100 + slot, 10 ** (slot - 2)); // magnitudes 0.01 .. 100
      p.write(slot, row);
      const got = p.row(slot);
      const { q, scales } = p.int8Slot(slot);
      for (let h = 0; h < kvHeads; h++) {
        let m = 0;
        for (let d = 0; d < headDim; d++) m = Math.max(m, Math.abs(row[h * headDim + d]));
        assert.equal(scales[h], Math.fround(m / 127), `scale of head ${h}`);
        let peak = 0;
        for (let d = 0; d < headDim; d++) {
          const i = h * headDim + d;
          assert.ok(Math.abs(got[i] - row[i]) <= (m / 254) * (1 + 1e-6), `[${kvHeads}x${headDim}] slot ${slot} value ${i}: ${got[i]} vs ${row[i]}`);
          peak = Math.max(peak, Math.abs(q[i]));
        }
        assert.equal(peak, 127, "the largest value of a head maps to +-127");
      }
    }
  }
});

test("int8 quantization: zeros give scale 0, ties round to even, NaN poisons only its head", () => {
  const q = new Int8Array(4);
  assert.equal(quantizeHeadI8(q, [0, 0, 0, 0]), 0);
  assert.deepEqual([...q], [0, 0, 0, 0]);
  // max 127 -> inv 1: 0.5 and 2.5 are ties (to 0 and 2), -1.5 goes to -2
  assert.equal(quantizeHeadI8(q, [127, 0.5, 2.5, -1.5]), 1);
  assert.deepEqual([...q], [127, 0, 2, -2]);
  const p = new KvPlane("int8", 1, 4, 2);
  p.write(0, Float32Array.of(NaN, 1, 3, -127));
  const row = p.row(0);
  assert.ok(Number.isNaN(row[0]) && Number.isNaN(row[1]));
  assert.deepEqual([...row.subarray(2)], [3, -127]);
  assert.throws(() => new KvPlane("int8", 1, 4), TypeError);
  assert.throws(() => new KvPlane("int8", 1, 6, 4), RangeError);
});

test("int8 plane: copySlots carries the scales with the values", () => {
  const p = new KvPlane("int8", 8, 10, 5);
  for (let s = 0; s < 2; s++) p.write(s, randomF32(10, s, s === 0 ? 100 : 0.01));
  const want = [p.row(0).slice(), p.row(1).slice()];
  p.copySlots(0, 4, 2);
  p.write(0, randomF32(10, 9, 1)); // the source changes after the copy; the copy must not
  assert.deepEqual(p.row(4), want[0]);
  assert.deepEqual(p.row(5), want[1]);
});

test("KV budget: an int8 block holds one byte per value plus 4 bytes per head and slot", () => {
  const c = syntheticConfig({ numLayers: 3, hiddenSize: 256, numHeads: 4, numKvHeads: 2 }); // headDim 64
  assert.equal(kvRowBytes("int8", 2, 64), 2 * 64 + 2 * 4);
  assert.equal(kvBytesPerBlock(c, 16, "int8"), 2 * 3 * 16 * (128 + 8));
  assert.equal(kvBytesPerBlock(c, 16, "f32"), 2 * 3 * 16 * 128 * 4);
});

test("the cuda target refuses an int8 KV cache with an OptionError naming --kv-dtype", () => {
  const err = (() => {
    try {
      resolveSettings({ dtype: "bf16" }, { ops: [] } as unknown as Graph, new Map(), "int8", 16, [9, 0]);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof OptionError, String(err));
  assert.match(err.message, /--kv-dtype.*int8.*cuda/s);
});

const cpu = new CpuBackend({ threads: 2 });
const closers: Engine[] = [];
after(() => closers.forEach((e) => e.close()));

for (const [name, backend] of [["reference", new ReferenceBackend()], ["cpu", cpu]] as [string, Backend][]) {
  test(`${name} backend, int8 KV: copyBlock copies scales (a sequence reading a copied block decodes as the original)`, () => {
    // headDim 12 (odd multiple of 4), GQA 6:2, blocks of 4
    const config = syntheticConfig({ numLayers: 2, hiddenSize: 72, numHeads: 6, numKvHeads: 2, vocabSize: 64 });
    const engine = Engine.fromCheckpoint(syntheticCheckpoint(config, 7), { backend, blockSize: 4, maxSeqLen: 32, numBlocks: 16, kvDtype: "int8" });
    closers.push(engine);
    assert.equal(engine.kvBytes, 2 * 2 * engine.kv.numBlocks * 4 * (2 * 12 + 2 * 4));
    const tokens = [1, 9, 17, 25, 33, 41, 49, 57, 2];
    const pool = new BlockPool(engine.kv.numBlocks, 4);
    const decodeLast = (seq: Sequence) => engine.forward(buildStep([{ seq, numNew: 1, wantLogits: true }], 4));
    const a = new Sequence(0, tokens);
    pool.reserve(a, tokens.length);
    const pre = buildStep([{ seq: a, numNew: 8, wantLogits: false }], 4);
    pre.logitRows = new Int32Array(0);
    engine.forward(pre);
    a.numComputed = 8;
    // b gets fresh blocks; copy a's two full blocks into them, then both decode token 9
    const b = new Sequence(1, tokens);
    pool.reserve(b, tokens.length);
    b.numComputed = 8;
    const [ta, tb] = [a.blockTable, b.blockTable];
    for (let i = 0; i < 2; i++) engine.copyBlock(ta[i], tb[i]);
    const want = decodeLast(a);
    const got = decodeLast(b);
    assert.deepEqual(got, want);
    // and the copy is what makes it so: a fresh block (zero scales) decodes differently
    const c = new Sequence(2, tokens);
    pool.reserve(c, tokens.length);
    c.numComputed = 8;
    engine.copyBlock(ta[0], c.blockTable[0]);
    assert.notDeepEqual(decodeLast(c), want);
  });
}

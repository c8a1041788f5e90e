import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../src/engine/engine.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { KvPlane } from "../../src/backends/reference/kv-plane.js";
import type { KvDType } from "../../src/backends/backend.js";

test("16-bit KV planes round to the nearest representable value and read back as float32", () => {
  const row = Float32Array.of(1, 1 / 3, -2.5e-3, 65504, 1e-8);
  const f16 = new KvPlane("f16", 4, 5);
  f16.write(2, row);
  assert.deepEqual([...f16.row(2)], [1, 0.333251953125, -0.0025005340576171875, 65504, 0]);
  const bf16 = new KvPlane("bf16", 4, 5);
  bf16.write(1, row);
  assert.deepEqual([...bf16.row(1)].slice(0, 2), [1, 0.333984375]);
  assert.equal(f16.bytes, 4 * 5 * 2);
});

function lastLogits(dtype: KvDType): { logits: Float32Array; kvBytes: number } {
  const config = syntheticConfig({ numLayers: 2, numKvHeads: 2, vocabSize: 64 });
  const engine = Engine.fromCheckpoint(syntheticCheckpoint(config, 5), { blockSize: 4, maxSeqLen: 32, kvDtype: dtype });
  const tokens = [1, 9, 17, 25, 33, 41, 49, 57, 2, 3];
  const seq = new Sequence(0, tokens);
  const pool = new BlockPool(engine.kv.numBlocks, 4);
  pool.reserve(seq, tokens.length);
  // prefill all but the last token, then decode the last: it reads every K/V back from the cache
  const pre = buildStep([{ seq, numNew: tokens.length - 1, wantLogits: false }], 4);
  pre.logitRows = new Int32Array(0);
  engine.forward(pre);
  seq.numComputed = tokens.length - 1;
  return { logits: engine.forward(buildStep([{ seq, numNew: 1, wantLogits: true }], 4)), kvBytes: engine.kvBytes };
}

test("an F16 or BF16 KV cache halves KV memory and stays within the dtype's error of F32", () => {
  const ref = lastLogits("f32");
  for (const [dtype, tol] of [["f16", 2e-3], ["bf16", 2e-2]] as const) {
    const r = lastLogits(dtype);
    assert.equal(r.kvBytes * 2, ref.kvBytes);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < ref.logits.length; i++) {
      worst = Math.max(worst, Math.abs(r.logits[i] - ref.logits[i]));
      scale = Math.max(scale, Math.abs(ref.logits[i]));
    }
    assert.ok(worst / scale < tol, `${dtype}: ${worst / scale}`);
    assert.ok(worst > 0, `${dtype} storage should differ from f32 at all`);
  }
});

/**
 * The accuracy gate of an int8 KV cache (issue 7): perplexity with KV int8 at most 1%
 * above FP32, over a text sampled from the FP32 model itself (so the text is one the
 * model finds likely, and the gate measures the cache, not the text). On stories260K
 * (headDim 8: a scale per 8 values) and on a random-weight model whose dims all divide
 * by 128 (headDim 128); stories260K also on the cpu backend, which must agree with the
 * reference's int8 perplexity.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import type { KvDType } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { Engine } from "../../src/engine/engine.js";
import { perplexity } from "../../src/eval/metrics.js";
import { sampleText } from "../../src/eval/sample-text.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { fixture } from "../helpers/fixtures.js";

const WINDOWS = { ctx: 128, stride: 64 };
const engines: Engine[] = [];
after(() => engines.forEach((e) => e.close()));

function engine(ckpt: Checkpoint, kvDtype: KvDType, cpu = false): Engine {
  const e = Engine.fromCheckpoint(ckpt, { kvDtype, blockSize: 16, maxSeqLen: 320, maxBatchTokens: 320, ...(cpu ? { backend: new CpuBackend({ threads: 2 }) } : {}) });
  engines.push(e);
  return e;
}

function gate(t: { diagnostic(m: string): void }, name: string, ckpt: Checkpoint, prompt: number[]): { f32: number; int8: number; text: number[] } {
  const text = sampleText(engine(ckpt, "f32"), prompt, 300 - prompt.length, 7);
  const f32 = perplexity(engine(ckpt, "f32"), text, WINDOWS).perplexity;
  const int8 = perplexity(engine(ckpt, "int8"), text, WINDOWS).perplexity;
  const rise = int8 / f32 - 1;
  t.diagnostic(`${name}: perplexity over ${text.length} sampled tokens: f32 ${f32.toFixed(4)}, KV int8 ${int8.toFixed(4)} (${(100 * rise).toFixed(3)}%)`);
  assert.ok(rise <= 0.01, `${name}: KV int8 perplexity ${int8} is ${(100 * rise).toFixed(2)}% above f32 ${f32}`);
  assert.notEqual(int8, f32, "an int8 cache that changes nothing is not storing int8");
  return { f32, int8, text };
}

test("KV int8 gate on stories260K: perplexity within 1% of f32 (reference), cpu backend agrees", (t) => {
  const dir = fixture(t, "models/stories260K");
  if (!dir) return;
  const ckpt = openCheckpoint(dir);
  try {
    const r = gate(t, "stories260K", ckpt, [1, 403, 407, 261, 378]); // "Once upon a time"
    const cpu = perplexity(engine(ckpt, "int8", true), r.text, WINDOWS).perplexity;
    t.diagnostic(`stories260K: KV int8 perplexity on the cpu backend ${cpu.toFixed(4)}`);
    assert.ok(Math.abs(cpu / r.int8 - 1) < 1e-3, `cpu ${cpu} vs reference ${r.int8}`);
  } finally {
    ckpt.close();
  }
});

test("KV int8 gate on a random-weight model with every dim a multiple of 128: within 1% of f32", (t) => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 256, numHeads: 2, numKvHeads: 1, intermediateSize: 384, vocabSize: 512 }); // headDim 128
  gate(t, "random 256/128", syntheticCheckpoint(config, 11), [1, 100, 200, 300]);
});

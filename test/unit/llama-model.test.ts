import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { Engine } from "../../src/engine/engine.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { denseForward } from "../helpers/dense-forward.js";

const VARIANTS: Record<string, Partial<ModelConfig>> = {
  "llama (GQA, interleaved rope)": { numKvHeads: 2, rope: { theta: 10000, style: "interleaved", dim: 8, scaling: { type: "none" } } },
  "llama (MQA, tied head, linear rope scaling)": { numKvHeads: 1, tieWordEmbeddings: true, rope: { theta: 500000, style: "neox", dim: 8, scaling: { type: "linear", factor: 4 } } },
  "qwen2 (qkv bias)": { architecture: "qwen2", numKvHeads: 2, attentionBias: true },
  "qwen3 (q/k norm, head_dim != hidden/heads)": { architecture: "qwen3", numKvHeads: 4, qkNorm: true, headDim: 16, rope: { theta: 1e6, style: "neox", dim: 16, scaling: { type: "none" } } },
  "mistral (sliding window 5)": { architecture: "mistral", numKvHeads: 2, slidingWindow: 5 },
  "partial rotary": { rope: { theta: 10000, style: "neox", dim: 4, scaling: { type: "none" } } },
};

/** Largest absolute difference relative to the largest magnitude in b. */
function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / scale;
}

/** Feeds `tokens` to a fresh sequence in chunks of the given sizes; returns logits of every position. */
function runChunked(engine: Engine, tokens: number[], chunks: number[], shuffleBlocks = false): Float32Array[] {
  const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize);
  if (shuffleBlocks) pool.reserve(new Sequence(-1, [0]), engine.kv.blockSize * 3); // skew the block ids
  const seq = new Sequence(0, tokens);
  const out: Float32Array[] = [];
  let i = 0;
  for (const n of chunks) {
    assert.ok(pool.reserve(seq, seq.numComputed + n));
    // ask for logits of every row of the chunk through a one-token-per-slice trick: run it as one slice
    const step = buildStep([{ seq, numNew: n, wantLogits: true }], engine.kv.blockSize);
    step.logitRows = Int32Array.from({ length: n }, (_, r) => r);
    const logits = engine.forward(step);
    const V = engine.config.vocabSize;
    for (let r = 0; r < n; r++) out.push(logits.slice(r * V, (r + 1) * V));
    seq.numComputed += n;
    i += n;
  }
  assert.equal(i, tokens.length);
  return out;
}

for (const [name, over] of Object.entries(VARIANTS)) {
  test(`model ${name}: paged ragged forward equals a dense masked forward`, () => {
    const config = syntheticConfig({ numLayers: 2, vocabSize: 96, maxPositionEmbeddings: 64, ...over });
    const ckpt = syntheticCheckpoint(config, 7);
    const engine = Engine.fromCheckpoint(ckpt, { blockSize: 4, maxSeqLen: 64, maxSeqs: 2 });
    const tokens = [1, 17, 42, 5, 88, 3, 61, 29, 70, 11, 9, 33, 50];
    const dense = denseForward(config, (n) => ckpt.readF32(n), tokens);
    const oneShot = runChunked(engine, tokens, [tokens.length]);
    const chunked = runChunked(engine, tokens, [3, 1, 5, 1, 3], true);
    for (let t = 0; t < tokens.length; t++) {
      assert.ok(maxRelErr(oneShot[t], dense[t]) < 1e-5, `position ${t}: one-shot vs dense ${maxRelErr(oneShot[t], dense[t])}`);
      assert.ok(maxRelErr(chunked[t], oneShot[t]) < 1e-6, `position ${t}: chunked vs one-shot`);
    }
  });
}

test("two sequences in one ragged step give the same logits as each alone", () => {
  const config = syntheticConfig({ numKvHeads: 2, vocabSize: 64 });
  const engine = Engine.fromCheckpoint(syntheticCheckpoint(config, 3), { blockSize: 4, maxSeqLen: 32, maxSeqs: 3 });
  const a = [1, 5, 9, 13, 17, 21, 25];
  const b = [1, 60, 2];
  const alone = (toks: number[]) => runChunked(engine, toks, [toks.length]).at(-1)!;
  const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize);
  const sa = new Sequence(0, a);
  const sb = new Sequence(1, b);
  pool.reserve(sb, b.length);
  pool.reserve(sa, a.length);
  const step = buildStep([{ seq: sa, numNew: a.length, wantLogits: true }, { seq: sb, numNew: b.length, wantLogits: true }], 4);
  const logits = engine.forward(step);
  const V = config.vocabSize;
  assert.ok(maxRelErr(logits.subarray(0, V), alone(a)) < 1e-5);
  assert.ok(maxRelErr(logits.subarray(V, 2 * V), alone(b)) < 1e-5);
});

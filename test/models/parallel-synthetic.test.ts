/**
 * Random-weight models with more layers, FP32, sharded several ways: greedy tokens equal
 * the single-rank engine's. One model has qkv bias, GQA (8 heads, 2 KV heads) and uneven
 * splits (intermediate 173, vocabulary 99); the other MQA (its one KV head replicated on
 * every rank), q/k norm and a head tied to the embedding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { ASCII_VOCAB_SIZE } from "../../src/tokenizer/ascii.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-synthetic-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const BUILD = { maxSeqs: 3, maxBatchTokens: 12, maxLogitRows: 12, maxSeqLen: 96 };
const PROMPTS = [[1, 40, 41, 42, 50, 60, 70, 5, 9, 33, 34, 35, 36, 37], [1, 80, 81], [1, 20, 21, 22, 23, 24, 25, 26]];

async function greedy(dir: string): Promise<number[][]> {
  const llm = await LLM.load(dir, { maxSeqs: 3, maxBatchTokens: 12 });
  try {
    const outs = await llm.generate(PROMPTS.map((p) => ({ promptTokenIds: p })), { temperature: 0, maxTokens: 16, ignoreEos: true });
    return outs.map((o) => o.outputs[0].tokenIds);
  } finally {
    llm.close();
    if (llm.core.engine instanceof ShardedEngine) llm.core.engine.close();
  }
}

const MODELS: [string, Partial<ModelConfig>, [number, number][]][] = [
  ["7 layers, qkv bias, GQA 8/2, intermediate 173", { architecture: "qwen2", numLayers: 7, numHeads: 8, numKvHeads: 2, intermediateSize: 173, attentionBias: true }, [[2, 1], [1, 3]]],
  ["6 layers, MQA 4/1, q/k norm, tied head", { architecture: "qwen3", numLayers: 6, numHeads: 4, numKvHeads: 1, headDim: 16, qkNorm: true, tieWordEmbeddings: true, intermediateSize: 96 }, [[2, 2]]],
];

for (const [name, over, splits] of MODELS) {
  test(`random weights (${name}): ${splits.map(([tp, pp]) => `tp ${tp} x pp ${pp}`).join(", ")} give the single-rank greedy tokens`, async () => {
    const ckpt = syntheticCheckpoint(syntheticConfig({ hiddenSize: 64, vocabSize: ASCII_VOCAB_SIZE, maxPositionEmbeddings: 128, ...over }), 7);
    const base = join(tmp, name.replace(/\W+/g, "-"));
    buildEngineDir(ckpt, base + "-single", BUILD);
    const want = await greedy(base + "-single");
    for (const [tp, pp] of splits) {
      buildShardedEngineDir(ckpt, `${base}-tp${tp}pp${pp}`, { tp, pp }, BUILD);
      assert.deepEqual(await greedy(`${base}-tp${tp}pp${pp}`), want, `tp ${tp} x pp ${pp}`);
    }
  });
}

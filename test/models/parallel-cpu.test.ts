/**
 * Sharded engines on the CPU backend (its step program split at each collective, the
 * collective run on the rank's thread): --tp 2, --pp 2 and --tp 2 --pp 2 engines built
 * for --target cpu give the greedy tokens of the single-rank cpu engine and of the
 * reference engine, on stories260K and on random-weight models with more layers (GQA and
 * qkv bias with uneven splits; MQA replicated, q/k norm, tied head; bf16 weights).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { buildEngineDir } from "../../src/engine/build.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { ASCII_VOCAB_SIZE } from "../../src/tokenizer/ascii.js";
import { fixture } from "../helpers/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-cpu-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

type Prompt = string | { promptTokenIds: number[] };

async function greedy(dir: string, prompts: Prompt[], maxSeqs: number, maxBatchTokens: number): Promise<{ tokens: number[][]; engine: string }> {
  process.env.LLMRT_THREADS = "4"; // 2 threads a rank at tp 2, 1 at tp 2 x pp 2: both paths of the pool
  const llm = await LLM.load(dir, { maxSeqs, maxBatchTokens });
  try {
    const outs = await llm.generate(prompts, { temperature: 0, maxTokens: 16, ignoreEos: true });
    const e = llm.core.engine;
    return { tokens: outs.map((o) => o.outputs[0].tokenIds), engine: e instanceof ShardedEngine ? `sharded ${e.parallel.tp}x${e.parallel.pp}` : "single" };
  } finally {
    delete process.env.LLMRT_THREADS;
    llm.close();
    if (llm.core.engine instanceof ShardedEngine) llm.core.engine.close();
  }
}

/** Builds single-rank reference and cpu engines and the cpu splits; asserts every split's tokens equal both. */
async function compare(ckpt: Checkpoint, name: string, build: Partial<BuildOptions>, splits: [number, number][], prompts: Prompt[]): Promise<void> {
  const base = join(tmp, name);
  const s = build.maxSeqs!;
  const b = build.maxBatchTokens!;
  buildEngineDir(ckpt, `${base}-ref`, build);
  buildEngineDir(ckpt, `${base}-cpu`, { ...build, target: "cpu" });
  for (const [tp, pp] of splits) buildShardedEngineDir(ckpt, `${base}-tp${tp}pp${pp}`, { tp, pp }, { ...build, target: "cpu" });
  const ref = await greedy(`${base}-ref`, prompts, s, b);
  const cpu = await greedy(`${base}-cpu`, prompts, s, b);
  assert.deepEqual(cpu.tokens, ref.tokens, "single-rank cpu = reference");
  for (const [tp, pp] of splits) {
    const got = await greedy(`${base}-tp${tp}pp${pp}`, prompts, s, b);
    assert.equal(got.engine, `sharded ${tp}x${pp}`);
    assert.deepEqual(got.tokens, cpu.tokens, `cpu tp ${tp} x pp ${pp}`);
  }
}

const ALL: [number, number][] = [[2, 1], [1, 2], [2, 2]];

test("stories260K, --target cpu: --tp 2, --pp 2 and --tp 2 --pp 2 give the single-rank cpu and reference greedy tokens", async (t) => {
  const model = fixture(t, "models/stories260K");
  if (!model) return;
  const ckpt = openCheckpoint(model);
  try {
    // 16-token steps: prompts prefill in chunks beside decodes
    await compare(ckpt, "stories", { maxSeqs: 4, maxBatchTokens: 16, maxLogitRows: 16 }, ALL, ["Once upon a time", "The cat sat on the mat and", "Lily and Tom went to the park. They saw a big", "One day"]);
  } finally {
    ckpt.close();
  }
});

const PROMPTS = [[1, 40, 41, 42, 50, 60, 70, 5, 9, 33, 34, 35, 36, 37], [1, 80, 81], [1, 20, 21, 22, 23, 24, 25, 26]].map((p) => ({ promptTokenIds: p }));
const MODELS: [string, Partial<ModelConfig>, Partial<BuildOptions>, [number, number][]][] = [
  ["7 layers, qkv bias, GQA 8-2, intermediate 173", { architecture: "qwen2", numLayers: 7, numHeads: 8, numKvHeads: 2, intermediateSize: 173, attentionBias: true }, {}, [[2, 1], [1, 3], [2, 2]]],
  ["6 layers, MQA 4-1, q-k norm, tied head, bf16", { architecture: "qwen3", numLayers: 6, numHeads: 4, numKvHeads: 1, headDim: 16, qkNorm: true, tieWordEmbeddings: true, intermediateSize: 96 }, { dtype: "bf16" }, ALL],
];

for (const [name, over, opts, splits] of MODELS) {
  test(`random weights (${name}), --target cpu: ${splits.map(([tp, pp]) => `tp ${tp} x pp ${pp}`).join(", ")} give the single-rank greedy tokens`, async () => {
    const ckpt = syntheticCheckpoint(syntheticConfig({ hiddenSize: 64, vocabSize: ASCII_VOCAB_SIZE, maxPositionEmbeddings: 128, ...over }), 7);
    await compare(ckpt, name.replace(/\W+/g, "-"), { maxSeqs: 3, maxBatchTokens: 12, maxLogitRows: 12, maxSeqLen: 96, ...opts }, splits, PROMPTS);
  });
}

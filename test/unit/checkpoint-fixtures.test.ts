/** The real model files in ../shared/models (see MANIFEST.md) through every reader and writer. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { fixture, fixtures } from "../helpers/fixtures.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { ModelFile } from "../../src/checkpoint/file-io.js";
import { readGgufMetadata } from "../../src/checkpoint/gguf.js";
import { llama2cTokenizerCount } from "../../src/checkpoint/llama2c-format.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { permuteQkInterleavedToNeox, permuteQkNeoxToInterleaved } from "../../src/checkpoint/rope-permute.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { CheckpointError } from "../../src/errors.js";
import { tempDir } from "./checkpoint-util.js";

/** stories260K as MANIFEST.md describes it; each file differs only where noted. */
const STORIES: ModelConfig = {
  architecture: "llama",
  vocabSize: 512,
  hiddenSize: 64,
  intermediateSize: 172,
  numLayers: 5,
  numHeads: 8,
  numKvHeads: 4,
  headDim: 8,
  maxPositionEmbeddings: 512,
  rmsNormEps: 1e-5,
  rope: { theta: 10000, style: "interleaved", dim: 8, scaling: { type: "none" } },
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
  slidingWindow: null,
  bosTokenId: 1,
  eosTokenIds: [2],
};

function open(t: Parameters<typeof fixture>[0], path: string): Checkpoint {
  const c = openCheckpoint(path);
  t.after(() => c.close());
  return c;
}

test("stories260K.bin (llama2.c v0) and its directory", (t) => {
  const [bin, dir, tok] = fixtures(t, "models/stories260K/stories260K.bin", "models/stories260K", "models/stories260K/tok512.bin") ?? [];
  if (!bin) return;
  const c = open(t, bin);
  assert.equal(c.format, "llama2c");
  assert.deepEqual(c.config, STORIES);
  assert.deepEqual(c.tokenizer, { kind: "llama2c", file: tok });
  assert.equal(c.tensors().length, 47);
  const d = open(t, dir);
  assert.equal(d.path, bin);
  assert.deepEqual(d.tokenizer, { kind: "llama2c", file: tok });
});

test("stories260K.gguf holds the same weights as the .bin, tensor for tensor", (t) => {
  const [bin, gg] = fixtures(t, "models/stories260K/stories260K.bin", "models/stories260K-gguf/stories260K.gguf") ?? [];
  if (!bin) return;
  const b = open(t, bin);
  const g = open(t, gg);
  assert.equal(g.format, "gguf");
  // The GGUF stores a separate copy of the classifier and says context 2048.
  assert.deepEqual(g.config, { ...STORIES, maxPositionEmbeddings: 2048, tieWordEmbeddings: false });
  assert.deepEqual(g.tokenizer, { kind: "gguf", file: gg });
  assert.deepEqual(g.readF32("token_embd.weight"), b.readF32("token_embd.weight"));
  assert.deepEqual(g.readF32("output.weight"), b.readF32("token_embd.weight"));
  for (const info of b.tensors()) {
    assert.deepEqual(g.info(info.name).shape, info.shape, info.name);
    assert.deepEqual(g.readF32(info.name), b.readF32(info.name), info.name);
  }
});

test("derived stories260K-hf: q_proj/k_proj are the .bin's wq/wk moved to neox by the permutation helper", (t) => {
  const [bin, hf] = fixtures(t, "models/stories260K/stories260K.bin", "models/derived/stories260K-hf") ?? [];
  if (!bin) return;
  const b = open(t, bin);
  const h = open(t, hf);
  assert.equal(h.format, "safetensors");
  assert.deepEqual(h.config, { ...STORIES, rope: { ...STORIES.rope, style: "neox" } });
  assert.deepEqual(h.tokenizer, { kind: "none" });
  for (let l = 0; l < 5; l++) {
    const q = `blk.${l}.attn_q.weight`;
    const k = `blk.${l}.attn_k.weight`;
    assert.deepEqual(h.readF32(q), permuteQkInterleavedToNeox(b.readF32(q), 8, 8), q);
    assert.deepEqual(h.readF32(k), permuteQkInterleavedToNeox(b.readF32(k), 4, 8), k);
    assert.deepEqual(permuteQkNeoxToInterleaved(h.readF32(q), 8, 8), b.readF32(q), q);
    assert.deepEqual(h.readF32(`blk.${l}.attn_v.weight`), b.readF32(`blk.${l}.attn_v.weight`));
    assert.deepEqual(h.readF32(`blk.${l}.ffn_down.weight`), b.readF32(`blk.${l}.ffn_down.weight`));
  }
});

test("writers reproduce the fixtures: .bin -> HF dir equals the derived HF weights; .bin -> GGUF equals the .bin", (t) => {
  const [bin, hf] = fixtures(t, "models/stories260K/stories260K.bin", "models/derived/stories260K-hf") ?? [];
  if (!bin) return;
  const b = open(t, bin);
  const h = open(t, hf);
  const dir = tempDir(t);
  writeHfCheckpoint(join(dir, "hf"), b.config, b);
  const h2 = open(t, join(dir, "hf"));
  assert.deepEqual(h2.config, h.config);
  for (const info of h.tensors()) assert.deepEqual(h2.readF32(info.name), h.readF32(info.name), info.name);
  writeModelGguf(join(dir, "s.gguf"), b.config, b, { dtype: "f32" });
  const g = open(t, join(dir, "s.gguf"));
  assert.deepEqual(g.config, b.config);
  for (const info of b.tensors()) assert.deepEqual(g.readF32(info.name), b.readF32(info.name), info.name);
  // And from the HF (neox) side back into a llama GGUF: the permutation returns the .bin layout.
  writeModelGguf(join(dir, "h.gguf"), h.config, h, { dtype: "f32" });
  const g2 = open(t, join(dir, "h.gguf"));
  assert.deepEqual(g2.readF32("blk.3.attn_q.weight"), b.readF32("blk.3.attn_q.weight"));
  assert.deepEqual(g2.readF32("blk.3.attn_k.weight"), b.readF32("blk.3.attn_k.weight"));
});

test("llama-2-tiny-random.gguf (F16) opens with its config", (t) => {
  const p = fixture(t, "models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf");
  if (!p) return;
  const c = open(t, p);
  assert.deepEqual(c.config, {
    ...STORIES,
    vocabSize: 32000,
    hiddenSize: 8,
    intermediateSize: 32,
    numLayers: 1,
    numHeads: 2,
    numKvHeads: 2,
    headDim: 4,
    maxPositionEmbeddings: 4096,
    rope: { ...STORIES.rope, dim: 4 },
    tieWordEmbeddings: false,
  });
  assert.equal(c.info("token_embd.weight").dtype, "f16");
  assert.deepEqual(c.info("token_embd.weight").shape, [32000, 8]);
  assert.equal(c.info("blk.0.ffn_norm.weight").dtype, "f32");
  const w = c.readF32("blk.0.ffn_down.weight");
  assert.equal(w.length, 8 * 32);
  assert.ok(w.every(Number.isFinite) && w.some((v) => v !== 0));
});

test("vocab-only llama.cpp GGUFs open with readGgufMetadata", (t) => {
  const dir = fixture(t, "models/tokenizers/llama.cpp-vocab");
  if (!dir) return;
  const cases = [
    ["ggml-vocab-gpt-2.gguf", "gpt2", 50257],
    ["ggml-vocab-llama-spm.gguf", "llama", 32000],
    ["ggml-vocab-phi-3.gguf", "llama", 32064],
  ] as const;
  for (const [name, model, n] of cases) {
    const m = readGgufMetadata(join(dir, name));
    assert.equal(m.tensorCount, 0);
    assert.equal(m.string("tokenizer.ggml.model"), model);
    assert.equal(m.array("tokenizer.ggml.tokens")!.length, n);
    assert.equal(m.strings("tokenizer.ggml.tokens")![n - 1].length > 0, true);
  }
  const spm = join(dir, "ggml-vocab-llama-spm.gguf");
  assert.throws(() => openCheckpoint(spm), (e: unknown) => e instanceof CheckpointError && /vocab-only/.test(e.message));
  const gpt2 = readGgufMetadata(join(dir, "ggml-vocab-gpt-2.gguf"));
  assert.deepEqual(gpt2.strings("tokenizer.ggml.merges")!.slice(0, 2), ["Ġ t", "Ġ a"]);
  assert.equal(gpt2.number("tokenizer.ggml.eos_token_id"), 50256);
  const phi3 = readGgufMetadata(join(dir, "ggml-vocab-phi-3.gguf"));
  assert.match(phi3.string("tokenizer.chat_template")!, /^\{\{ bos_token \}\}/);
  assert.equal(phi3.numbers("tokenizer.ggml.scores")!.length, 32064);
});

test("llama2.c tokenizer files are recognised by content", (t) => {
  const [tok512, llama2] = fixtures(t, "models/stories260K/tok512.bin", "models/tokenizers/llama2/tokenizer.bin") ?? [];
  if (!tok512) return;
  for (const [p, n] of [[tok512, 512], [llama2, 32000]] as const) {
    const f = new ModelFile(p);
    assert.equal(llama2cTokenizerCount(f), n);
    f.close();
  }
});

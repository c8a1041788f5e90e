/**
 * llmrt against llama.cpp (node-llama-cpp 3.21.1) on random-weight checkpoints this test
 * writes itself: Llama, Qwen2 (qkv bias; untied and tied head), Qwen3 (q/k norm, head
 * dim != hidden / heads) and Mistral (sliding window), each as an F32 HF directory and as
 * GGUFs with F32, F16, Q8_0 and Q4_0 matrices; and a Llama of hidden size 256 (K-quant
 * rows are whole 256-value super-blocks) as GGUFs with Q4_K, Q5_K and Q6_K matrices.
 * Token ids go in directly on both sides.
 *
 * Per architecture x GGUF dtype: llmrt's greedy tokens (LLM API, temperature 0) equal
 * llama.cpp's, and llmrt's probabilities (teacher-forced engine forward on llama.cpp's
 * tokens) of llama.cpp's top-5 agree within a relative tolerance per dtype. The HF
 * directory gives the same llmrt logits as the F32 GGUF (q/k in the other RoPE layout),
 * which proves the permutation in the writers and readers. A GGUF whose only quantized
 * tensor is the token embedding (read by row lookup: no quantized arithmetic on
 * llama.cpp's side) checks llmrt's Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K dequantization tightly.
 */
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { TOKEN_EMBD } from "../../src/checkpoint/names.js";
import { syntheticConfig } from "../../src/models/synthetic.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { TensorDType } from "../../src/checkpoint/types.js";
import { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import type { TokenLogprob } from "../../src/runtime/request.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { logSoftmax } from "../helpers/golden.js";
import {
  compatConfigs,
  compatModel,
  llamaCpp,
  llamaCppGreedy,
  promptTokens,
  writeCompatGguf,
  writeCompatHf,
  writeMixedGguf,
  type CompatModel,
} from "../helpers/llamacpp.js";

const NEW_TOKENS = 16;
/**
 * Weight seeds, and prompt seeds chosen (once, by measuring) so that at every generated
 * position and every dtype llama.cpp's top-1 margin exceeds twice the difference between
 * the two sides: the whole greedy path is decided by the model, not by rounding.
 */
const SEEDS: Record<string, { weights: number; prompt: number }> = {
  llama: { weights: 11, prompt: 3 },
  qwen2: { weights: 12, prompt: 0 },
  "qwen2-tied": { weights: 13, prompt: 0 },
  qwen3: { weights: 14, prompt: 2 },
  mistral: { weights: 15, prompt: 4 },
};
/** K-quants need rows of whole 256-value super-blocks: every matrix of this Llama has 256 or 512 columns. */
const KQ_MODEL = "llama256";
const KQ_SEEDS = { weights: 16, prompt: 1 };
/** The bigram term grows with the hidden size (a dot product of embeddings): scaled to keep logits as peaked as the 64-wide models'. */
const BIGRAM_256 = 0.25;
const kqConfig = () =>
  syntheticConfig({ architecture: "llama", vocabSize: 320, hiddenSize: 256, intermediateSize: 512, numLayers: 2, maxPositionEmbeddings: 256, numHeads: 8, numKvHeads: 4, headDim: 32 });
const KDTYPES: TensorDType[] = ["q4_k", "q5_k", "q6_k"];
/** The greedy path must be compared over at least this many tokens (all 16 here; slack for other CPUs' rounding). */
const MIN_PATH = 12;

/**
 * Relative tolerance on the probabilities of llama.cpp's top-5, per storage dtype of the
 * matrices. Both sides dequantize the same bytes; what differs is llama.cpp's arithmetic
 * (a relative probability error is about the error of the log-probability in nats;
 * measured worst cases over the five models in brackets):
 * - f32: float32 throughout with an F32 KV cache; only summation order differs [7e-6].
 * - f16: ggml rounds activations to f16 for F16 matmuls, 2^-11 relative per value [1e-2].
 * - q8_0 / q4_0: ggml quantizes activations to Q8_0 blocks (8 bits, one f16 scale per 32
 *   values) for these matmuls: ~0.5% noise per value, grown through 2 layers [0.25].
 *   A float64 forward pass over llmrt's dequantized weights that rounds its matmul inputs
 *   exactly as ggml does (float32 x * (1/d), half away from zero) reproduced llama.cpp's
 *   probabilities to 5e-6 in all ten quantized cases (a one-off experiment), so the
 *   whole gap is that rounding; dequantization itself is checked at the F32 tolerance by
 *   the token-embedding tests at the end.
 * - q4_k / q5_k / q6_k (the 256-wide Llama): ggml quantizes activations to Q8_K (8 bits,
 *   one float scale per 256 values) for these matmuls: the same kind of noise [0.19]; the
 *   K-quant token-embedding tests give 5e-6, so the dequantization is exact.
 */
const TOLERANCE: Record<TensorDType, number> = { f32: 1e-4, f16: 2e-2, q8_0: 0.4, q4_0: 0.4, q4_k: 0.4, q5_k: 0.4, q6_k: 0.4, bf16: NaN };
const DTYPES: TensorDType[] = ["f32", "f16", "q8_0", "q4_0"];

let dir = "";
const models = new Map<string, CompatModel>();
const paths = new Map<string, string>();

before(() => {
  dir = mkdtempSync(join(tmpdir(), "llmrt-compat-"));
  for (const [name, config] of Object.entries(compatConfigs())) {
    const m = compatModel(name, config, SEEDS[name].weights);
    models.set(name, m);
    paths.set(`${name}/hf`, writeCompatHf(dir, m));
    for (const d of DTYPES) paths.set(`${name}/${d}`, writeCompatGguf(dir, m, d));
  }
  const kq = compatModel(KQ_MODEL, kqConfig(), KQ_SEEDS.weights, { bigram: BIGRAM_256 });
  models.set(KQ_MODEL, kq);
  for (const d of KDTYPES) paths.set(`${KQ_MODEL}/${d}`, writeCompatGguf(dir, kq, d));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const promptFor = (name: string) => promptTokens(models.get(name)!.config.vocabSize, (SEEDS[name] ?? KQ_SEEDS).prompt);

/** Teacher-forced llmrt logits: rows for positions first..tokens.length-1 of `tokens`. */
function engineLogits(path: string, tokens: number[], first: number): Float32Array[] {
  const ckpt = openCheckpoint(path);
  const engine = Engine.fromCheckpoint(ckpt, { maxSeqLen: 64, blockSize: 16 });
  ckpt.close();
  const seq = new Sequence(0, tokens);
  new BlockPool(engine.kv.numBlocks, engine.kv.blockSize).reserve(seq, tokens.length);
  const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize);
  step.logitRows = Int32Array.from({ length: tokens.length - first }, (_, k) => first + k);
  const logits = engine.forward(step);
  const V = engine.config.vocabSize;
  return Array.from({ length: tokens.length - first }, (_, k) => logits.slice(k * V, (k + 1) * V));
}

const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

interface Comparison {
  /** Worst relative error over llama.cpp's top-5 probabilities, where it occurred. */
  worst: { err: number; pos: number; id: number; ours: number; cpp: number };
  /** Per generated position: llama.cpp's top-1 margin exceeds what the differences could flip. */
  decided: boolean[];
  summary: string;
}

/** llmrt's teacher-forced probabilities on llama.cpp's greedy path, against llama.cpp's top-5. */
async function compareProbabilities(path: string, prompt: number[], cpp: Awaited<ReturnType<typeof llamaCppGreedy>>): Promise<Comparison & { rows: Float32Array[] }> {
  const rows = engineLogits(path, [...prompt, ...cpp.tokens.slice(0, -1)], prompt.length - 1);
  const worst = { err: 0, pos: -1, id: -1, ours: 0, cpp: 0 };
  const decided: boolean[] = [];
  rows.forEach((row, k) => {
    const lp = logSoftmax(row);
    let nats = 0;
    for (const [id, p] of cpp.top[k]) {
      const q = Math.exp(lp[id]);
      const err = Math.abs(q - p) / p;
      nats = Math.max(nats, Math.abs(lp[id] - Math.log(p)));
      if (err > worst.err) Object.assign(worst, { err, pos: k, id, ours: q, cpp: p });
    }
    // every top-5 log-probability moved by at most `nats`: a margin above twice that cannot flip
    decided.push(cpp.margin[k] > 2 * nats);
    if (decided[k]) {
      assert.equal(argmax(row), cpp.tokens[k], `generated position ${k}: argmax (llama.cpp margin ${cpp.margin[k].toFixed(3)})`);
    }
  });
  const summary =
    `worst relative probability error ${worst.err.toExponential(2)} at generated position ${worst.pos}, token ${worst.id}` +
    ` (llmrt ${worst.ours.toPrecision(6)}, llama.cpp ${worst.cpp.toPrecision(6)}); smallest llama.cpp top-1 margin` +
    ` ${Math.min(...cpp.margin).toFixed(3)} nats; argmax checked at ${decided.filter(Boolean).length}/${rows.length} positions`;
  return { rows, worst, decided, summary };
}

/** Per model x GGUF dtype: greedy tokens and top-5 probabilities against llama.cpp's. */
async function agreesWithLlamaCpp(t: TestContext, name: string, dtype: TensorDType): Promise<void> {
  const llama = await llamaCpp(t);
  if (!llama) return;
  const m = models.get(name)!;
  const path = paths.get(`${name}/${dtype}`)!;
  const prompt = promptFor(name);
  if (m.config.slidingWindow !== null) {
    // llama.cpp ignores the window: only sequences within it are comparable
    assert.ok(prompt.length + NEW_TOKENS <= m.config.slidingWindow);
  }
  const cpp = await llamaCppGreedy(llama, path, prompt, NEW_TOKENS);
  assert.equal(cpp.tokens.length, NEW_TOKENS, "llama.cpp stopped early (generated an end-of-generation token)");

  // engines built from these files go to the temporary dir, not the user's cache; the
  // reference target, whose logits compareProbabilities reads (the cpu target's 8-bit decode
  // activations move log-probabilities by more than the 1e-4 the API check allows)
  const llm = await LLM.load(path, { target: "reference", maxSeqs: 1, maxSeqLen: 64, engineCache: join(dir, "engines") });
  let ours: number[];
  let apiLogprobs: TokenLogprob[];
  try {
    const [r] = await llm.generate({ promptTokenIds: prompt }, { temperature: 0, maxTokens: NEW_TOKENS, ignoreEos: true, logprobs: 5 });
    ours = r.outputs[0].tokenIds;
    apiLogprobs = r.outputs[0].logprobs ?? [];
  } finally {
    llm.close();
  }

  const { rows, worst, decided, summary } = await compareProbabilities(path, prompt, cpp);
  // greedy generation follows llama.cpp's path through the first undecided position
  const undecided = decided.indexOf(false);
  const n = undecided === -1 ? NEW_TOKENS : undecided + 1;
  t.diagnostic(`${name} ${dtype}: ${summary}; greedy path compared over ${n} tokens`);
  assert.ok(worst.err < TOLERANCE[dtype], `worst relative probability error ${worst.err} > ${TOLERANCE[dtype]}`);
  assert.deepEqual(ours.slice(0, n), cpp.tokens.slice(0, n), "greedy tokens");
  assert.ok(n >= MIN_PATH, `greedy path compared over only ${n} tokens`);

  // the API's logprobs (incremental decode) are the engine's (one prefill) where the paths agree
  assert.equal(apiLogprobs.length, NEW_TOKENS);
  for (let k = 0; k < n; k++) {
    const lp = logSoftmax(rows[k]);
    const api = apiLogprobs[k];
    assert.equal(api.token, cpp.tokens[k]);
    assert.ok(Math.abs(api.logprob - lp[api.token]) < 1e-4, `position ${k}: API logprob ${api.logprob} vs engine ${lp[api.token]}`);
    assert.deepEqual(api.top?.map((x) => x.token), [...lp.keys()].sort((a, b) => lp[b] - lp[a]).slice(0, 5), `position ${k}: API top-5`);
  }
}

for (const name of Object.keys(SEEDS)) {
  test(`${name}: HF safetensors and F32 GGUF of the same weights give the same llmrt logits`, (t) => {
    const tokens = [...promptFor(name), 3, 200, 17, 90, 44, 8];
    const hf = engineLogits(paths.get(`${name}/hf`)!, tokens, 0);
    const gg = engineLogits(paths.get(`${name}/f32`)!, tokens, 0);
    let worst = 0;
    hf.forEach((row, k) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - gg[k][i]) / Math.max(1, Math.abs(v))))));
    t.diagnostic(`${name}: worst relative logit difference HF vs GGUF ${worst.toExponential(2)}`);
    // "llama" GGUFs hold q/k in the interleaved layout and run interleaved RoPE; HF runs neox
    // on permuted rows: the same math, with head-dim sums taken in another order
    assert.ok(worst < 1e-5, `worst relative logit difference ${worst}`);
  });

  for (const dtype of DTYPES) {
    test(`${name} ${dtype.toUpperCase()} GGUF: greedy tokens and top-5 probabilities agree with llama.cpp`, (t) => agreesWithLlamaCpp(t, name, dtype));
  }
}

for (const dtype of KDTYPES) {
  test(`${KQ_MODEL} ${dtype.toUpperCase()} GGUF: greedy tokens and top-5 probabilities agree with llama.cpp`, (t) => agreesWithLlamaCpp(t, KQ_MODEL, dtype));
}

for (const [model, dtype] of [["llama", "q8_0"], ["llama", "q4_0"], [KQ_MODEL, "q4_k"], [KQ_MODEL, "q5_k"], [KQ_MODEL, "q6_k"]] as const) {
  test(`${model} GGUF with a ${dtype.toUpperCase()} token embedding (rest F32): llmrt dequantizes exactly as llama.cpp`, async (t) => {
    const llama = await llamaCpp(t);
    if (!llama) return;
    const m = models.get(model)!;
    // llama.cpp reads the embedding by row lookup (dequantize, no quantized matmul), so
    // the rest of the model runs in float32 on both sides and the F32 tolerance applies
    const path = writeMixedGguf(dir, m, `embd-${dtype}`, (n) => (n === TOKEN_EMBD ? dtype : "f32"));
    const prompt = promptFor(model);
    const cpp = await llamaCppGreedy(llama, path, prompt, NEW_TOKENS);
    const { worst, summary } = await compareProbabilities(path, prompt, cpp);
    t.diagnostic(`${model} embd ${dtype}: ${summary}`);
    assert.ok(worst.err < TOLERANCE.f32, `worst relative probability error ${worst.err} > ${TOLERANCE.f32}`);
  });
}

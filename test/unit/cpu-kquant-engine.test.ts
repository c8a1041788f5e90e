/**
 * A whole random-weight Llama GGUF in a Q4_K_M-like mix (Q4_K for most matrices, Q6_K for
 * ffn_down, the head and layer 0's attn_v, Q5_K for layer 1's Q / K / V so that all three
 * formats are kept) built for target cpu: its K-quant matrices stay packed on the cpu
 * backend (assembly/kquant.ts), Q / K / V of different formats unfused (each packed), and greedy decode (one-token steps: integer dots) gives
 * the same tokens as the reference backend on the reference build of the same file, with
 * logits and a teacher-forced prefill (dequantized row blocks, or BLAS) within tolerance;
 * 1 and 2 threads, BLAS on and off.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend, type CpuBound } from "../../src/backends/cpu/backend.js";
import { kernelModule } from "../../src/backends/cpu/wasm-module.js";
import { systemBlas } from "../../src/backends/cpu/blas.js";
import { isKQuant } from "../../src/checkpoint/ggml-kquants.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { TensorDType } from "../../src/checkpoint/types.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir, keptPackedFormats } from "../../src/engine/build.js";
import { resolveBuildOptions, type BuildOptions } from "../../src/engine/options.js";
import { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { randomTensors, smallConfig } from "./checkpoint-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-cpu-kquant-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const OPTS = { maxBatchTokens: 64, maxLogitRows: 64, maxSeqs: 1, maxSeqLen: 64 };
const GEN = 12;
/**
 * Decode quantizes activations to int16 (cpu-kquant.test.ts bounds each call); through two
 * layers with every matmul packed that moves logits up to ~9.5e-4 of the largest (2.4e-4
 * when layer 0's Q / K / V were one fused f32 matrix), while a wrong sub-block scale or min
 * moves them by a K-quant step (1e-2 and more).
 */
const TOL = 2e-3;
/**
 * K-quants on the relaxed build decode with 8-bit activations per 256 columns (llama.cpp's
 * Q8_K; cpu-kquant.test.ts bounds each call and checks exact sums on 8-bit inputs): on this
 * random model the logits move by up to 0.17 of the largest (llama.cpp's own 8-bit
 * activations moved its top-5 probabilities by 0.16-0.19 on such a model), enough to flip
 * near-ties, so that build is teacher-forced on the reference's tokens and must pick the same
 * token wherever the reference's top two are further apart than that. The plain SIMD128 build
 * (int16 activations) is held to TOL and equal greedy tokens.
 */
const TOL_INT8_ACTIVATIONS = 0.3;

/** The gap between the two largest logits of a row, relative to the largest |logit|. */
function topGap(row: Float32Array): number {
  let a = -Infinity, b = -Infinity, m = 0;
  for (const v of row) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
    m = Math.max(m, Math.abs(v));
  }
  return (a - b) / m;
}

/** Q4_K_M-like: llama.cpp keeps ffn_down, attn_v (some layers) and the head in Q6_K. */
function mix(name: string): TensorDType | undefined {
  if (name === "output.weight" || name.endsWith("ffn_down.weight") || name === "blk.0.attn_v.weight") return "q6_k";
  if (/^blk\.1\.attn_[qkv]\.weight$/.test(name)) return "q5_k";
  return undefined;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
}

/** Greedy decode; with `follow`, teacher-forced: each step feeds follow[i] (the tokens chosen are still recorded). */
function greedy(e: Engine, prompt: number[], follow?: number[]): { tokens: number[]; logits: Float32Array[] } {
  const seq = new Sequence(0, prompt);
  new BlockPool(e.kv.numBlocks, e.kv.blockSize).reserve(seq, prompt.length + GEN);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  let numNew = prompt.length;
  for (let i = 0; i < GEN; i++) {
    const row = e.forward(buildStep([{ seq, numNew, wantLogits: true }], e.kv.blockSize)).slice();
    seq.numComputed += numNew;
    logits.push(row);
    tokens.push(argmax(row));
    seq.tokens.push(follow ? follow[i] : tokens.at(-1)!);
    numNew = 1;
  }
  return { tokens, logits };
}

/** Logits of every position of `tokens` in one prefill step [T, V]. */
function prefill(e: Engine, tokens: number[]): Float32Array {
  const seq = new Sequence(0, tokens);
  new BlockPool(e.kv.numBlocks, e.kv.blockSize).reserve(seq, tokens.length);
  const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], e.kv.blockSize);
  step.logitRows = Int32Array.from(tokens, (_, i) => i);
  return e.forward(step).slice();
}

function relToMax(got: Float32Array, want: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / scale;
}

test("Q4_K_M-like GGUF: cpu backend (K-quants packed) = reference backend: greedy tokens, logits (1 / 2 threads, BLAS on / off)", (t) => {
  const config = smallConfig({ hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 768, rope: { theta: 10000, style: "neox", dim: 64, scaling: { type: "none" } } });
  const file = join(tmp, "m.gguf");
  writeModelGguf(file, config, randomTensors(config, 3), { dtype: "q4_k", dtypeOf: mix });
  const dirs = { reference: join(tmp, "ref"), cpu: join(tmp, "cpu") };
  const ckpt = openCheckpoint(file);
  try {
    buildEngineDir(ckpt, dirs.reference, { ...OPTS, target: "reference" });
    const m = buildEngineDir(ckpt, dirs.cpu, { ...OPTS, target: "cpu" });
    t.diagnostic(`cpu build: ${m.report.packed}`);
    for (const dt of ["q4_k", "q5_k", "q6_k"]) assert.match(m.report.packed ?? "", new RegExp(`gguf ${dt}`), `the cpu build keeps ${dt}`);
    // what fusion keeps apart: the formats a build keeps packed (cpu: K-quants; cuda widens them, so fuses as before; --quant repacks all)
    const kept = (opts: Partial<BuildOptions>) => keptPackedFormats(ckpt, resolveBuildOptions(ckpt.config, { ...OPTS, ...opts }, ckpt));
    assert.deepEqual(["blk.0.attn_q.weight", "blk.0.attn_v.weight"].map((n) => kept({ target: "cpu" })?.(n)), ["q4_k", "q6_k"]);
    assert.equal(kept({ target: "cuda" })?.("blk.0.attn_v.weight"), undefined);
    assert.equal(kept({ target: "cpu", quant: { scheme: "int8-wo" } as BuildOptions["quant"] }), undefined);
  } finally {
    ckpt.close();
  }
  const ref = Engine.load(dirs.reference);
  const prompts = [[1, 17, 42, 99, 5], [1, 250, 3]];
  const want = prompts.map((p) => greedy(ref, p));
  const forced = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % config.vocabSize);
  const wantPrefill = prefill(ref, forced);
  const blas = systemBlas({ LLMRT_BLAS: "auto" });
  if (!blas) t.diagnostic("no OpenBLAS: the BLAS variant is skipped");
  const relaxed = kernelModule().simd === "relaxed";
  const variants = [1, 2].flatMap((threads) => (blas ? [false, true] : [false]).map((useBlas) => ({ threads, useBlas, simd: undefined as "simd" | undefined })));
  if (relaxed) variants.push({ threads: 1, useBlas: false, simd: "simd" });
  for (const { threads, useBlas, simd } of variants) {
    {
      const cpuBackend = new CpuBackend({ threads, parallelMacs: 0, blas: useBlas ? blas! : false, ...(simd ? { simd } : {}) });
      let bound: CpuBound | undefined;
      const cpu = Engine.load(dirs.cpu, { backend: { name: "cpu", packedDTypes: cpuBackend.packedDTypes, bind: (...a: Parameters<CpuBackend["bind"]>) => (bound = cpuBackend.bind(...a)) } });
      const what = `${threads} thread(s), BLAS ${useBlas ? "on" : "off"}${simd ? ", plain SIMD128 build" : ""}`;
      const int8 = relaxed && !simd;
      try {
        const kept = new Set([...cpu.graph.tensors.keys()].map((n) => bound!.packedDType(n)).filter((d) => d && isKQuant(d)));
        assert.deepEqual([...kept].sort(), ["q4_k", "q5_k", "q6_k"], `${what}: K-quant matrices kept packed`);
        // layer 0's Q / K (Q4_K) and V (Q6_K) stay three matmuls, each packed, not one fused matrix widened to f32
        const unpacked = cpu.graph.ops.filter((op) => op.op === "matmul" && !bound!.packedDType(op.w)).map((op) => (op as { w: string }).w);
        assert.deepEqual(unpacked, [], `${what}: every matmul weight packed`);
        const matmulsOf = (layer: number) => cpu.graph.ops.filter((op) => op.op === "matmul" && (op as { w: string }).w.includes(`blk.${layer}.attn_`)).length;
        assert.equal(matmulsOf(0), 4, `${what}: layer 0 (Q4_K Q / K, Q6_K V): q, k, v and the output projection`);
        assert.equal(matmulsOf(1), 2, `${what}: layer 1 (Q5_K Q / K / V fused): qkv and the output projection`);
        let worst = 0;
        const tol = int8 ? TOL_INT8_ACTIVATIONS : TOL;
        prompts.forEach((p, i) => {
          const got = greedy(cpu, p, int8 ? want[i].tokens : undefined);
          if (!int8) assert.deepEqual(got.tokens, want[i].tokens, `${what}: greedy tokens of prompt ${i}`);
          want[i].logits.forEach((w, j) => {
            worst = Math.max(worst, relToMax(got.logits[j], w));
            if (int8 && topGap(w) > tol) assert.equal(got.tokens[j], want[i].tokens[j], `${what}: prompt ${i} step ${j}: the token (reference's top-two gap ${topGap(w).toExponential(2)})`);
          });
        });
        const pre = relToMax(prefill(cpu, forced), wantPrefill);
        t.diagnostic(`${what}: worst decode logit error ${worst.toExponential(2)}, prefill ${pre.toExponential(2)} of the largest logit`);
        assert.ok(worst < tol && pre < TOL, `${what}: logit error decode ${worst}, prefill ${pre}`);
      } finally {
        bound?.close();
      }
    }
  }
});

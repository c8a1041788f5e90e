/**
 * Whole quantized engines on the CPU backend against the reference backend: stories260K
 * built int8-wo (per channel), int4-wo g32 and int4-wo g64 asym, once per target from the
 * same checkpoint (the packed weights are the same bytes), loaded with their weights kept
 * packed; greedy decode (one-token steps: the integer kernels) gives the same tokens, and
 * a teacher-forced prefill (dequantized row blocks) the same logits within tolerance.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelModule } from "../../src/backends/cpu/wasm-module.js";
import { CpuBackend, type CpuBound } from "../../src/backends/cpu/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import type { QuantOptions } from "../../src/quant/options.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden } from "../helpers/golden.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-cpu-packed-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const OPTS = { maxBatchTokens: 256, maxLogitRows: 256, maxSeqs: 1, maxSeqLen: 256 };
const GEN = 32;

/**
 * Decode quantizes each activation row to int16 (error <= max|x| / 65534 per element), so
 * each matmul output moves by at most that times the weight row's L1 norm (cpu-packed.test.ts
 * checks this bound per kernel call); through five layers this measured 1.0-1.5e-4 of the
 * largest logit on these engines (bench/cpu-packed-precision.ts: int8-wo weights themselves
 * move them ~1.7e-2).
 * 1e-3 leaves that a margin, while one wrong scale or zero
 * point moves logits by int8 / int4 steps (1e-2 and more). Prefill runs the dequantized f32
 * weights: only the summation order differs there.
 */
const TOL = 1e-3;
/**
 * Int4 in groups of a multiple of 32 on the relaxed SIMD build decodes with 8-bit activations
 * per 32 columns (qmatmul8.ts, the lanes layout, as llama.cpp's Q8_0 activations): measured
 * 1.7e-2 of the largest logit here with g32 (a mean KL of 2.1e-4 to the reference's int4 where
 * int4 itself is 5.2e-2 from fp32), 2.7e-2 with g64 asym. Those engines are also checked on the
 * plain SIMD128 build (int16) at TOL.
 */
const TOL_INT8_ACTIVATIONS = 3e-2;

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
}

/** Greedy decode of GEN tokens after `prompt`; the logits of every step. */
function greedy(e: Engine, prompt: number[]): { tokens: number[]; logits: Float32Array[] } {
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
    seq.tokens.push(tokens.at(-1)!);
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

const QUANTS: [string, QuantOptions][] = [
  ["int8-wo", { scheme: "int8-wo" }],
  ["int4-wo g32", { scheme: "int4-wo", groupSize: 32 }],
  ["int4-wo g64 asym", { scheme: "int4-wo", groupSize: 64, asym: true }],
];

/** Greedy tokens and logits of the cpu engine in `dir` against `ref` on the golden prompts; the worst logit error. */
function compareCpu(ref: Engine, dir: string, goldens: ReturnType<typeof readGolden>[], simd: "simd" | undefined): number {
  const cpuBackend = new CpuBackend({ threads: 2, parallelMacs: 0, ...(simd ? { simd } : {}) });
  let bound: CpuBound | undefined;
  const cpu = Engine.load(dir, { backend: { name: "cpu", packedDTypes: cpuBackend.packedDTypes, bind: (...a: Parameters<CpuBackend["bind"]>) => (bound = cpuBackend.bind(...a)) } });
  try {
    const kept = [...cpu.graph.tensors.keys()].filter((n) => ["int8", "int4"].includes(bound!.packedDType(n) ?? ""));
    assert.ok(kept.length >= 5 * 3, `matmul weights kept packed on the cpu backend (${kept.length})`);
    let worst = 0;
    for (const g of goldens) {
      const want = greedy(ref, g.prompt_token_ids);
      const got = greedy(cpu, g.prompt_token_ids);
      assert.deepEqual(got.tokens, want.tokens, `"${g.prompt}": greedy tokens`);
      want.logits.forEach((w, i) => (worst = Math.max(worst, relToMax(got.logits[i], w))));
      const forced = [...g.prompt_token_ids, ...g.output_token_ids].slice(0, 40);
      worst = Math.max(worst, relToMax(prefill(cpu, forced), prefill(ref, forced)));
    }
    return worst;
  } finally {
    bound?.close();
  }
}

for (const [name, quant] of QUANTS) {
  test(`stories260K ${name}: cpu backend (weights packed) = reference backend: greedy tokens, logits`, (t) => {
    const model = fixture(t, "models/stories260K");
    const goldens = fixtures(t, ...STORIES_PROMPTS.slice(0, 2).map((p) => `golden/stories260K.llama2c.${p}.json`));
    if (!model || !goldens) return;
    const ckpt = openCheckpoint(model);
    const dirs = { reference: join(tmp, `${name}-ref`.replace(/ /g, "-")), cpu: join(tmp, `${name}-cpu`.replace(/ /g, "-")) };
    try {
      buildEngineDir(ckpt, dirs.reference, { ...OPTS, quant, target: "reference" });
      buildEngineDir(ckpt, dirs.cpu, { ...OPTS, quant, target: "cpu" });
    } finally {
      ckpt.close();
    }
    const ref = Engine.load(dirs.reference);
    const int8Activations = quant.scheme === "int4-wo" && kernelModule().simd === "relaxed"; // groups 32 / 64 / 128: all in the lanes layout
    const worst = compareCpu(ref, dirs.cpu, goldens.map(readGolden), undefined);
    t.diagnostic(`${name}: worst logit error ${worst.toExponential(2)} of the largest logit`);
    assert.ok(worst < (int8Activations ? TOL_INT8_ACTIVATIONS : TOL), `logit error ${worst}`);
    if (!int8Activations) return;
    const plain = compareCpu(ref, dirs.cpu, goldens.map(readGolden), "simd");
    t.diagnostic(`${name}, plain SIMD128 build (int16 activations): worst logit error ${plain.toExponential(2)}`);
    assert.ok(plain < TOL, `plain SIMD128 build: logit error ${plain}`);
  });
}

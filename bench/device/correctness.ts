/**
 * Correctness on a GPU: the CUDA backend against the reference backend on every model
 * variant and kernel path (f32 exact, bf16 through cuBLASLt / tensor-core GEMM / GEMV,
 * both attention kernels, fp8 KV, int8/int4/fp8 weights, CUDA graphs on and off),
 * `--quant int8-wo | int4-wo` engines with their packed weights kept on the device,
 * greedy/top-k on the device, and stories260K against the llama2.c / llama.cpp goldens
 * (teacher-forced at every position, and generated through LLM).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { cubinFile, readEngineCubins } from "../../src/backends/cuda/engine-files.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { syntheticCheckpoint } from "../../src/models/synthetic.js";
import { compareCase, MODEL_VARIANTS, type CompareCase } from "./compare.js";
import { buildPackedEngine, PACKED_CASES, PACKED_CONFIG, runPackedCase } from "./packed-engines.js";
import { readStoriesGoldens, STORIES_PROMPTS, teacherForcedGoldens } from "./golden.js";

export interface CheckRow {
  check: string;
  ok: boolean;
  detail: string;
  ms: number;
}

type Log = (row: CheckRow) => void;

function row(check: string, f: () => { ok: boolean; detail: string }, log: Log): CheckRow {
  const t0 = performance.now();
  let r: CheckRow;
  try {
    const x = f();
    r = { check, ...x, ms: performance.now() - t0 };
  } catch (e) {
    r = { check, ok: false, detail: `threw: ${(e as Error).message.split("\n")[0]}`, ms: performance.now() - t0 };
  }
  log(r);
  return r;
}

/** Backend-vs-reference cases: [case, backend options]. */
export function gpuCases(): [CompareCase, CudaBackendOptions][] {
  const out: [CompareCase, CudaBackendOptions][] = [];
  for (const [name, config] of Object.entries(MODEL_VARIANTS)) {
    out.push([{ name: `${name} f32`, config, dtype: "fp32", tol: 2e-5 }, {}]);
    out.push([{ name: `${name} bf16`, config, dtype: "bf16", tol: 3e-2 }, {}]);
  }
  const g = MODEL_VARIANTS.llama_gqa;
  const big = { ...g, hiddenSize: 512, numHeads: 4, numKvHeads: 2, intermediateSize: 1024, vocabSize: 2000 }; // head dim 128
  for (const linear of ["gemv", "gemm", "cublas"] as const) out.push([{ name: `bf16 hd128 linear=${linear}`, config: big, dtype: "bf16", tol: 3e-2, lengths: [130, 40, 9], chunk: 64 }, { linear }]);
  out.push([{ name: "bf16 hd128 decode-kernel only", config: big, dtype: "bf16", tol: 3e-2, lengths: [130, 40, 9], chunk: 64 }, { decodeAttentionOnly: true }]);
  // each decode-attention form forced, prefill rows through it too (the tiled form's split merge races for real here)
  for (const form of ["direct", "staged", "tiled", "mma"] as const) {
    out.push([{ name: `bf16 hd128 decode ${form}`, config: big, dtype: "bf16", tol: 3e-2, lengths: [300, 130, 40, 9], chunk: 64 }, { decodeAttentionOnly: true, decodeAttention: form }]);
    out.push([{ name: `bf16 fp8 KV decode ${form}`, config: big, dtype: "bf16", tol: 8e-2, lengths: [300, 130, 40, 9], chunk: 64 }, { kvDtype: "fp8", decodeAttention: form }]);
  }
  // TinyLlama's grouping for the mma form (8 query heads of size 64 a KV head), and 20 heads over one (two head chunks)
  const g8 = { ...g, hiddenSize: 512, numHeads: 8, numKvHeads: 1, intermediateSize: 1024, vocabSize: 2000 };
  const g20 = { ...g, hiddenSize: 1280, numHeads: 20, numKvHeads: 1, intermediateSize: 1024, vocabSize: 2000 };
  out.push([{ name: "bf16 hd64 group 8 decode mma", config: g8, dtype: "bf16", tol: 3e-2, lengths: [300, 130, 40, 9], chunk: 64 }, { decodeAttentionOnly: true, decodeAttention: "mma" }]);
  out.push([{ name: "bf16 hd64 group 20 decode mma", config: g20, dtype: "bf16", tol: 3e-2, lengths: [130, 40, 9], chunk: 64 }, { decodeAttention: "mma" }]);
  out.push([{ name: "bf16 window decode tiled", config: MODEL_VARIANTS.mistral_window, dtype: "bf16", tol: 3e-2, lengths: [130, 40, 9] }, { decodeAttention: "tiled" }]);
  // programmatic dependent launch: every kernel of the step may start before the previous one ends
  out.push([{ name: "bf16 hd128 pdl", config: big, dtype: "bf16", tol: 3e-2, lengths: [300, 130, 40, 9], chunk: 64 }, { pdl: true }]);
  out.push([{ name: "bf16 hd128 pdl gemv, no graphs", config: big, dtype: "bf16", tol: 3e-2, lengths: [130, 40, 9], chunk: 64 }, { pdl: true, linear: "gemv", cudaGraphs: false }]);
  out.push([{ name: "f32 pdl", config: g, dtype: "fp32", tol: 2e-5 }, { pdl: true }]);
  out.push([{ name: "bf16 weights i4 pdl", config: big, dtype: "bf16", tol: 0.3, lengths: [130, 40, 9], chunk: 64 }, { pdl: true, weightFormat: "i4" }]);
  out.push([{ name: "bf16 no CUDA graphs", config: g, dtype: "bf16", tol: 3e-2 }, { cudaGraphs: false }]);
  out.push([{ name: "fp16", config: g, dtype: "fp16", tol: 5e-3 }, {}]);
  out.push([{ name: "f32 with bf16 KV", config: g, dtype: "fp32", kvDtype: "bf16", tol: 1e-2 }, {}]);
  out.push([{ name: "bf16 fp8 KV", config: big, dtype: "bf16", tol: 8e-2, lengths: [130, 40, 9], chunk: 64 }, { kvDtype: "fp8" }]);
  for (const [fmt, tol] of [["i8", 5e-2], ["i4", 0.3], ["i4z", 0.3], ["fp8", 0.1]] as const) {
    for (const linear of ["gemv", "gemm", "auto"] as const) out.push([{ name: `bf16 weights ${fmt} linear=${linear}`, config: big, dtype: "bf16", tol, lengths: [130, 40, 9], chunk: 64 }, { weightFormat: fmt, linear }]);
  }
  return out;
}

export function runBackendCases(base: CudaBackendOptions, log: Log): CheckRow[] {
  return gpuCases().map(([c, o]) =>
    row(`vs reference: ${c.name}`, () => {
      const r = compareCase(c, new CudaBackend({ ...base, ...o }));
      return { ok: r.ok, detail: `max rel ${r.maxRel.toExponential(2)} (tol ${c.tol}), argmax agree ${(100 * r.argmaxAgree).toFixed(1)}%` };
    }, log),
  );
}

/** `--quant int8-wo | int4-wo` engines (packed-engines.ts): device formats, logits and greedy tokens against the reference on the same engine. */
export function runPackedEngines(base: CudaBackendOptions, log: Log): CheckRow[] {
  const root = mkdtempSync(join(tmpdir(), "llmrt-packed-cuda-"));
  try {
    return PACKED_CASES.map((c, i) =>
      row(`packed engine: ${c.name} (${c.dtype})`, () => {
        const dir = join(root, String(i));
        buildPackedEngine(syntheticCheckpoint(PACKED_CONFIG, 11), dir, c);
        return runPackedCase(c, dir, new CudaBackend({ ...base, onLog: () => {} }));
      }, log),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** stories260K built for the cuda target from `modelDir` (fixtures), checked against the goldens. */
export async function runGoldens(shared: string, base: CudaBackendOptions, log: Log): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), "llmrt-stories-cuda-"));
  try {
    const ckpt = openCheckpoint(join(shared, "models/stories260K/stories260K.bin"));
    // the engine carries the prepared cubins when we have them for this GPU
    const cubins = base.engineDir ? readEngineCubins(base.engineDir, "sm_90") : null;
    const files = cubins ? new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), cubins.get(u)!])) : undefined;
    try {
      buildEngineDir(ckpt, dir, { target: "cuda", maxBatchTokens: 512, maxLogitRows: 512, maxSeqs: 8, maxSeqLen: 512 }, { files });
    } finally {
      ckpt.close();
    }
    const goldens = readStoriesGoldens(shared);
    rows.push(
      row("stories260K f32: argmax = llama2.c at every golden position, top-5 logits", () => {
        const r = teacherForcedGoldens(Engine.load(dir, { blockSize: 16 }), goldens);
        return { ok: r.mismatches.length === 0 && r.worstLogit < 1e-4, detail: `${r.positions} positions, ${r.mismatches.length} mismatches${r.mismatches.length ? ` (${r.mismatches.slice(0, 3).join("; ")})` : ""}, worst top-5 logit rel err ${r.worstLogit.toExponential(2)}` };
      }, log),
    );
    const t0 = performance.now();
    let r: CheckRow;
    try {
      const llm = await LLM.load(dir, { maxSeqs: 8, maxSeqLen: 512 });
      try {
        // all prompts in flight together, each to its golden length
        const outs = await Promise.all(goldens.map((g) => llm.generate({ promptTokenIds: g.prompt_token_ids }, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true }).then((o) => o[0])));
        const bad = goldens.map((g, i) => i).filter((i) => JSON.stringify(outs[i].outputs[0].tokenIds) !== JSON.stringify(goldens[i].output_token_ids));
        r = { check: "stories260K greedy through LLM (5 prompts batched, CUDA graphs): tokens = goldens", ok: bad.length === 0, detail: bad.length ? `differs: ${bad.map((i) => STORIES_PROMPTS[i]).join(", ")}` : `${goldens.reduce((n, g) => n + g.output_token_ids.length, 0)} tokens equal`, ms: performance.now() - t0 };
      } finally {
        llm.close();
      }
    } catch (e) {
      r = { check: "stories260K greedy through LLM", ok: false, detail: `threw: ${(e as Error).message.split("\n")[0]}`, ms: performance.now() - t0 };
    }
    log(r);
    rows.push(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

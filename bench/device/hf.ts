/**
 * llmrt on the GPU against Hugging Face transformers on the same GPU: hf_models.py saves
 * random-weight Llama and Qwen2 checkpoints (HF dirs) with their prompts and the logits
 * transformers computes at every position (float32 and bfloat16); here the same
 * checkpoints are built for the cuda target (fp32 and bf16) and their logits compared.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { relError } from "./compare.js";
import type { CheckRow } from "./correctness.js";

interface Meta {
  prompts: number[][];
  vocab: number;
  /** file name -> dtype of the HF run that wrote it */
  logits: Record<string, string>;
}

function hfLogits(dir: string, file: string): Float32Array {
  const b = readFileSync(join(dir, file));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Every prompt's logits at every position from `engine`, concatenated as hf_models.py writes them. */
function llmrtLogits(engine: Engine, prompts: number[][]): Float32Array {
  const V = engine.config.vocabSize;
  const out = new Float32Array(prompts.reduce((n, p) => n + p.length, 0) * V);
  let at = 0;
  for (const p of prompts) {
    const seq = new Sequence(0, p);
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, p.length);
    const step = buildStep([{ seq, numNew: p.length, wantLogits: true }], engine.kv.blockSize);
    step.logitRows = Int32Array.from({ length: p.length }, (_, i) => i);
    out.set(engine.forward(step), at);
    at += p.length * V;
  }
  return out;
}

const TOL: Record<string, Record<string, number>> = {
  fp32: { float32: 1e-3, bfloat16: 5e-2 },
  bf16: { float32: 5e-2, bfloat16: 5e-2 },
};

export function runHfComparison(root: string, base: CudaBackendOptions, log: (r: CheckRow) => void): CheckRow[] {
  const rows: CheckRow[] = [];
  if (!existsSync(root)) return rows;
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name);
    if (!existsSync(join(dir, "llmrt-meta.json"))) continue;
    const meta = JSON.parse(readFileSync(join(dir, "llmrt-meta.json"), "utf8")) as Meta;
    for (const dtype of ["fp32", "bf16"] as const) {
      const t0 = performance.now();
      let logits: Float32Array | null = null;
      let err = "";
      try {
        const ckpt = openCheckpoint(dir);
        const engine = Engine.fromCheckpoint(ckpt, { backend: new CudaBackend(base), dtype, maxSeqLen: 512, maxBatchTokens: 512, maxLogitRows: 512, blockSize: 16 });
        ckpt.close();
        logits = llmrtLogits(engine, meta.prompts);
      } catch (e) {
        err = (e as Error).message.split("\n")[0];
      }
      for (const [file, hfDtype] of Object.entries(meta.logits)) {
        const check = `vs transformers: ${name} llmrt ${dtype} / HF ${hfDtype}`;
        if (!logits) {
          const r = { check, ok: false, detail: `threw: ${err}`, ms: performance.now() - t0 };
          log(r), rows.push(r);
          continue;
        }
        const ref = hfLogits(dir, file);
        const rel = ref.length === logits.length ? relError(logits, ref) : Infinity;
        const tol = TOL[dtype][hfDtype] ?? 5e-2;
        const r = { check, ok: rel <= tol, detail: ref.length === logits.length ? `rel ${rel.toExponential(2)} (tol ${tol})` : `length ${logits.length} vs HF ${ref.length}`, ms: performance.now() - t0 };
        log(r), rows.push(r);
      }
    }
  }
  return rows;
}

/**
 * Where a batched decode step's time goes on the cpu target: S sequences decoding together
 * (one token of each a step, after a 16-token prompt each, as compare-llamacpp's 16-sequence
 * figure runs them), split into the system BLAS's sgemm calls, the pool's programs (the
 * widening of 16-bit weights to f32 blocks for sgemm, and every other op), and the rest.
 * Shows what bounds aggregate decode throughput at 16 sequences: the matmuls' flops at the
 * rate OpenBLAS reaches with 16 rows (bench/cpu-blas.ts measures that rate per shape).
 *
 *   node --import tsx bench/cpu-batched-split.ts [--shape llama-110m] [--dtype bf16] [--seqs 16]
 *     [--threads 2] [--steps 32] [--rounds 3] [--block-mib 4]
 *
 * OpenBLAS reads OPENBLAS_CORETYPE: unset it to let it pick the CPU's best kernels.
 */
import { parseArgs } from "node:util";
import { CpuBackend, type CpuBound } from "../src/backends/cpu/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";
import { machineLine, median } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtype: { type: "string", default: "bf16" },
    seqs: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "32" },
    rounds: { type: "string", default: "3" },
    // the f32 block that 16-bit weights are widened into for sgemm (BlasMatmulOptions.blockBytes)
    "block-mib": { type: "string" },
  },
});
const S = Number(a.seqs), G = Number(a.steps), P = 16;
const dense: Record<string, "fp32" | "fp16" | "bf16"> = { f32: "fp32", f16: "fp16", bf16: "bf16" };
if (!dense[a.dtype!]) throw new Error(`cpu-batched-split: --dtype is one of ${Object.keys(dense).join(", ")}`);
const config = syntheticSpecConfig(`synthetic:${a.shape}`);
if (!config) throw new Error(`cpu-batched-split: unknown shape ${a.shape}`);
const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", a.dtype as TensorDType).path);
let bound: CpuBound | undefined;
const cpu = new CpuBackend({ threads: Number(a.threads), ...(a["block-mib"] ? { blasMatmul: { blockBytes: Number(a["block-mib"]) * 2 ** 20 } } : {}) });
const backend = { name: cpu.name, packedDTypes: cpu.packedDTypes, bind: (...args: Parameters<CpuBackend["bind"]>) => (bound = cpu.bind(...args)) };
const engine = Engine.fromCheckpoint(ckpt, { backend, dtype: dense[a.dtype!], blockSize: 16, maxSeqLen: P + G + 1, maxSeqs: S, maxBatchTokens: Math.max(P * S, 16), maxLogitRows: S });

/** Milliseconds spent in each wrapped method, summed. */
const spent = new Map<string, number>();
function timed<T extends object>(obj: T, method: keyof T & string, label: string): void {
  const f = (obj[method] as (...args: unknown[]) => unknown).bind(obj);
  (obj as Record<string, unknown>)[method] = (...args: unknown[]) => {
    const t = performance.now();
    try {
      return f(...args);
    } finally {
      spent.set(label, (spent.get(label) ?? 0) + performance.now() - t);
    }
  };
}
if (!bound?.blas) console.log("(no system BLAS: every matmul runs in the pool's programs)");
else (timed(bound.blas.blas, "sgemm", "sgemm"), timed(bound.blas, "run", "blas"));
timed(bound!.rt, "run", "pool programs");

console.log(`command: node --import tsx bench/cpu-batched-split.ts ${process.argv.slice(2).join(" ")}`);
console.log(`machine: ${machineLine()}`);
const matmulWeights = engine.graph.ops.flatMap((op) => {
  const d = op.op === "matmul" ? engine.graph.tensors.get(op.w) : undefined;
  return d?.kind === "weight" ? [d.shape] : [];
});
const flops = 2 * S * matmulWeights.reduce((n, [rows, cols]) => n + rows * cols, 0);
const per: Record<string, number[]> = { step: [], sgemm: [], blas: [], "pool programs": [] };
for (let r = 0; r <= Number(a.rounds); r++) {
  const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false);
  const seqs = Array.from({ length: S }, (_, j) => {
    const s = new Sequence(j, Array.from({ length: P + G }, (_, i) => (i * 7919 + 13 + 101 * j) % config.vocabSize));
    pool.reserve(s, P + G);
    return s;
  });
  const step = (n: number) => {
    engine.forward(buildStep(seqs.map((seq) => ({ seq, numNew: n, wantLogits: true })), engine.kv.blockSize));
    for (const s of seqs) s.numComputed += n;
  };
  step(P);
  spent.clear();
  const t = performance.now();
  for (let i = 0; i < G; i++) step(1);
  if (r === 0) continue; // warm-up
  per.step.push((performance.now() - t) / G);
  for (const k of ["sgemm", "blas", "pool programs"]) per[k].push((spent.get(k) ?? 0) / G);
}
const ms = (k: string) => median(per[k]);
// the widening programs run inside BlasMatmul.run, around its sgemm calls
const widen = ms("blas") - ms("sgemm");
const others = ms("pool programs") - widen;
const host = ms("step") - ms("blas") - others;
console.log(`${a.shape} ${a.dtype}, ${S} sequences, ${a.threads} thread(s): ${ms("step").toFixed(1)} ms a step (${((1000 * S) / ms("step")).toFixed(1)} tok/s; medians of ${a.rounds} rounds of ${G} steps)`);
console.log(`  sgemm ${ms("sgemm").toFixed(1)} ms (${(flops / ms("sgemm") / 1e6).toFixed(1)} GFLOP/s over the matmuls' ${(flops / 1e9).toFixed(2)} GFLOP a step), widening for it ${widen.toFixed(1)} ms, the other ops (pool) ${others.toFixed(1)} ms, host ${host.toFixed(1)} ms`);
bound?.close();
ckpt.close();

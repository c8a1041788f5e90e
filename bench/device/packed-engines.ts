/**
 * `--quant int8-wo | int4-wo [--int4-asym]` engines on the cuda target against the reference backend
 * running the same engine (same graph, same packed weights): the device formats the
 * packed weights took (i8 / i4 / i4z kept as they are, or dequantized with a reason), the
 * logits of scripted ragged steps, and greedy tokens. Used by test/unit/cuda-packed.test.ts
 * (CPU emulator) and bench/device/correctness.ts (a GPU).
 */
import type { Backend, BoundGraph, KvCacheShape, PackedWeightMap, WeightMap } from "../../src/backends/backend.js";
import type { CudaBound } from "../../src/backends/cuda/bound.js";
import { deviceLabel } from "../../src/backends/cuda/packed-upload.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { deserializeGraph, readManifest, WeightsReader } from "../../src/engine/format.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { decodeEntry } from "../../src/engine/packed-weights.js";
import type { Graph } from "../../src/graph/ir.js";
import type { MemoryPlan } from "../../src/graph/passes/plan-memory.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticConfig } from "../../src/models/synthetic.js";
import { makeStep, relError, scriptedSteps } from "./compare.js";

/** A random Llama whose every matmul K (128, 256) divides by 128. */
export const PACKED_CONFIG = syntheticConfig({ hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 256, vocabSize: 128, numLayers: 2 });

export const PACKED_BUILD: Partial<BuildOptions> = { target: "cuda", maxSeqs: 3, maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64 };

export interface PackedCase {
  name: string;
  /** --quant; absent: the checkpoint is first written as a GGUF of `gguf` blocks, which a cuda build keeps as they are. */
  quant?: NonNullable<BuildOptions["quant"]>;
  gguf?: "q4_0" | "q8_0";
  dtype: BuildOptions["dtype"];
  /** The device format every linear weight should take: "i8", "i4 g128", "i4z g64", or the activation type where the layout falls back. */
  want: string;
  /** Largest relative logit error: the f32-activation tolerance of the cuda tests (the packed values are exact there), bf16's otherwise. */
  tol: number;
}

export const PACKED_CASES: PackedCase[] = [
  { name: "int8-wo", quant: { scheme: "int8-wo" }, dtype: "fp32", want: "i8", tol: 2e-5 },
  { name: "int4-wo g128", quant: { scheme: "int4-wo", groupSize: 128 }, dtype: "fp32", want: "i4 g128", tol: 2e-5 },
  { name: "int4-wo g32", quant: { scheme: "int4-wo", groupSize: 32 }, dtype: "fp32", want: "i4 g32", tol: 2e-5 },
  { name: "int4-wo g64 bf16", quant: { scheme: "int4-wo", groupSize: 64 }, dtype: "bf16", want: "i4 g64", tol: 3e-2 },
  // asymmetric int4: i4z, zero points uploaded with the scales (fp32: exact as the symmetric cases; bf16: bf16's tolerance)
  { name: "int4-wo g64 asym", quant: { scheme: "int4-wo", groupSize: 64, asym: true }, dtype: "fp32", want: "i4z g64", tol: 2e-5 },
  { name: "int4-wo g128 asym bf16", quant: { scheme: "int4-wo", groupSize: 128, asym: true }, dtype: "bf16", want: "i4z g128", tol: 3e-2 },
  { name: "GGUF Q4_0", gguf: "q4_0", dtype: "fp32", want: "i4 g32", tol: 2e-5 },
  { name: "GGUF Q8_0", gguf: "q8_0", dtype: "fp32", want: "i8 g32", tol: 2e-5 },
];

/** Builds the case's engine for the cuda target into `dir` (a GGUF case: from `ckpt` written as that GGUF next to it); returns the build log's lines. */
export function buildPackedEngine(ckpt: Checkpoint, dir: string, c: Pick<PackedCase, "quant" | "gguf" | "dtype">, files?: Map<string, Uint8Array>): string[] {
  const log: string[] = [];
  let src = ckpt;
  if (c.gguf) {
    writeModelGguf(`${dir}.gguf`, ckpt.config, ckpt, { dtype: c.gguf });
    src = openCheckpoint(`${dir}.gguf`);
  }
  try {
    buildEngineDir(src, dir, { ...PACKED_BUILD, dtype: c.dtype, quant: c.quant }, { files, onLog: (l) => log.push(l) });
  } finally {
    if (src !== ckpt) src.close();
  }
  return log;
}

export function kvShape(config: ModelConfig, numBlocks: number): KvCacheShape {
  return { numLayers: config.numLayers, numBlocks, blockSize: 16, numKvHeads: config.numKvHeads, headDim: config.headDim, dtype: "f32" };
}

/** An engine dir's graph, float weights, packed weights (kept packed, as load.ts hands them to a backend listing their dtype) and memory plan. */
export function readEngine(dir: string): { graph: Graph; weights: WeightMap; packed: PackedWeightMap; plan: MemoryPlan } {
  const m = readManifest(dir);
  const reader = new WeightsReader(dir, m);
  const weights: WeightMap = new Map();
  const packed: PackedWeightMap = new Map();
  try {
    for (const e of m.weights.tensors) {
      const w = decodeEntry(reader.read(e, true), e, true);
      if (w instanceof Float32Array) weights.set(e.name, w);
      else packed.set(e.name, w);
    }
  } finally {
    reader.close();
  }
  return { graph: deserializeGraph(m.graph), weights, packed, plan: m.memoryPlan };
}

/** Binds `backend` to an engine dir's graph and weights as load.ts would (a cuda-target dir does not load on the reference backend by Engine.load). */
export function bindEngine(dir: string, backend: Backend, kv: KvCacheShape): BoundGraph {
  const { graph, weights, packed, plan } = readEngine(dir);
  return backend.bind(graph, weights, kv, plan, packed);
}

/** Device format of every linear weight of a cuda binding, as "i8", "i8 g32", "i4 g128", "f32", ... */
export function linearFormats(bound: CudaBound): string[] {
  return bound.deviceWeights
    .all()
    .filter((w) => w.role === "linear")
    .map((w) => deviceLabel(w.fmt, w.group, w.cols));
}

export type Runner = { forward(step: StepBatch): Float32Array | Map<string, Float32Array> };

const logitsOf = (r: Runner, step: StepBatch) => {
  const out = r.forward(step);
  return out instanceof Map ? out.get("logits")! : out;
};

const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

/**
 * Scripted ragged steps (prefill chunks and decode over 8 shuffled blocks) compared step
 * by step, then greedy decoding from a short prompt on each: the tokens each picks.
 */
export function comparePacked(cuda: Runner, ref: Runner, vocab: number, greedySteps = 8) {
  const steps = scriptedSteps([29, 5, 14], vocab, 16, 8, 16);
  const rel = steps.map((s) => relError(logitsOf(cuda, s), logitsOf(ref, s)));
  const greedy = { cuda: [] as number[], ref: [] as number[] };
  for (const [runner, out] of [[cuda, greedy.cuda], [ref, greedy.ref]] as const) {
    const seq = { tokens: [1, 17, 42, 5, 99, 3].map((t) => t % vocab), table: [7], done: 0 };
    let step = makeStep([seq], [seq.tokens.length], 16);
    for (let i = 0; i < greedySteps; i++) {
      const next = argmax(logitsOf(runner, step));
      out.push(next);
      seq.tokens.push(next);
      step = makeStep([seq], [1], 16);
    }
  }
  return { rel, maxRel: Math.max(...rel), greedyEqual: greedy.cuda.join() === greedy.ref.join(), greedy };
}

/** One case end to end on `cuda` (a CudaBackend): formats as wanted, logits within tolerance, greedy tokens equal. */
export function runPackedCase(c: PackedCase, dir: string, cuda: Backend, config: ModelConfig = PACKED_CONFIG): { ok: boolean; detail: string } {
  const kv = kvShape(config, 8);
  const bound = bindEngine(dir, cuda, kv) as CudaBound & BoundGraph;
  try {
    const formats = linearFormats(bound);
    const formatsOk = formats.every((f) => f === c.want);
    const r = comparePacked(bound, bindEngine(dir, new ReferenceBackend(), kv), config.vocabSize);
    const ok = formatsOk && r.maxRel <= c.tol && r.greedyEqual;
    return { ok, detail: `linear weights ${[...new Set(formats)].join(", ")} (want ${c.want}); max rel ${r.maxRel.toExponential(2)} (tol ${c.tol}); greedy ${r.greedyEqual ? "equal" : `differs: ${r.greedy.cuda.join(" ")} vs ${r.greedy.ref.join(" ")}`}` };
  } finally {
    bound.close?.();
  }
}

/**
 * The builder: model config -> plain graph -> passes -> memory plan (planEngine), then
 * the weights: each recipe executed, converted to the storage dtype, packed for the
 * target and written to weights.bin with its checksum (buildEngineDir).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Checkpoint } from "../checkpoint/types.js";
import type { Graph } from "../graph/ir.js";
import { DEFAULT_PASSES, runPasses } from "../graph/passes/pipeline.js";
import type { Pass } from "../graph/passes/pass.js";
import { planMemory, type MemoryPlan } from "../graph/passes/plan-memory.js";
import { buildLlamaGraph } from "../models/llama.js";
import { ENGINE_FORMAT, ENGINE_FORMAT_VERSION, PACKED_ENGINE_FORMAT_VERSION, WEIGHTS_FILE, WeightsWriter, WEIGHT_ALIGNMENT, serializeGraph, writeManifest, type EngineManifest, type TensorEntry } from "./format.js";
import { resolveBuildOptions, type BuildOptions, type BuildRequest } from "./options.js";
import { makeReport, type BuildReport } from "./report.js";
import { targetByName } from "./targets.js";
import { writeTokenizerFiles } from "./tokenizer-files.js";
import { storageDType, storedWeight } from "./weights.js";
import { matmulOnlyWeights, packedSummary, packWeight, type PackedBuild } from "./packed-weights.js";
import { encodePackedParts, type PackedDType } from "../quant/packed.js";
import { smoothQuantWeights, type CalibrationData } from "./smoothquant.js";
import { gptqWeights } from "./gptq-build.js";
import { checkOverridesMatch, quantFor } from "../quant/overrides.js";
import { ggmlPackedDType } from "../quant/ggml.js";

export interface EnginePlan {
  config: ModelConfig;
  options: BuildOptions;
  /** The model's graph as written, before any pass. */
  plainGraph: Graph;
  /** After the passes; weights carry the recipes the builder executes. */
  graph: Graph;
  memory: MemoryPlan;
  report: BuildReport;
}

/**
 * Graph work only (no weights read): cheap, also what `llmrt inspect PATH` shows.
 * `keptFormat` names the packed format a checkpoint tensor is kept in (keptPackedFormats),
 * so that fusion leaves weights of different formats apart.
 */
export function planEngine(config: ModelConfig, options: BuildOptions, passes: readonly Pass[] = DEFAULT_PASSES, keptFormat?: (tensor: string) => string | undefined): EnginePlan {
  const plainGraph = keptFormat ? markKeptFormats(buildLlamaGraph(config), keptFormat) : buildLlamaGraph(config);
  const { graph, log } = runPasses(plainGraph, passes);
  const capacity = { T: options.maxBatchTokens, R: options.maxLogitRows };
  const memory = planMemory(graph, capacity);
  const unfused = planMemory(plainGraph, capacity);
  const weightBytes: Record<string, number> = {};
  for (const d of graph.tensors.values()) {
    if (d.kind !== "weight") continue;
    const dt = storageDType(d.shape, options.dtype);
    weightBytes[dt] = (weightBytes[dt] ?? 0) + d.shape.reduce((a, b) => a * b, 1) * (dt === "f32" ? 4 : 2);
  }
  const report = makeReport(plainGraph, graph, log, memory, unfused.naiveBytes, weightBytes);
  return { config, options, plainGraph, graph, memory, report };
}

function markKeptFormats(g: Graph, keptFormat: (tensor: string) => string | undefined): Graph {
  const tensors = new Map(g.tensors);
  for (const [name, d] of g.tensors) {
    if (d.kind !== "weight" || (d.source && d.source.kind !== "checkpoint")) continue;
    const stored = keptFormat(d.source?.name ?? name);
    if (stored) tensors.set(name, { ...d, stored });
  }
  return { ...g, tensors };
}

/**
 * The packed format each checkpoint tensor keeps in a build for `target` without --quant
 * (GGUF Q8_0 / Q4_0 / K-quant blocks, where the target's backend reads that packing: the
 * cuda target reads int8 / int4 but widens K-quants); nothing under --quant, which packs
 * every matmul weight in one scheme.
 */
export function keptPackedFormats(ckpt: Checkpoint, options: BuildOptions): ((tensor: string) => string | undefined) | undefined {
  if (options.quant !== undefined) return undefined;
  const reads: readonly string[] = targetByName(options.target).createBackend(undefined, options).packedDTypes ?? [];
  if (reads.length === 0) return undefined;
  return (tensor) => {
    if (!ckpt.has(tensor)) return undefined;
    const dtype = ckpt.info(tensor).dtype;
    const kept = ggmlPackedDType(dtype);
    return kept && reads.includes(kept) ? dtype : undefined;
  };
}

export interface BuildProgress {
  /** Bytes of weights written so far, of `total`. */
  done: number;
  total: number;
  tensor: string;
}

export interface BuildHooks {
  onProgress?: (p: BuildProgress) => void;
  /** Files the target adds to the engine dir (e.g. the cuda target's cubins), by relative path. */
  files?: Map<string, Uint8Array>;
  /** --quant w8a8 / calibrated int4-wo, int8-wo: the calibration tokens (required there), calibration progress (windows; GPTQ: layer groups), and the log lines. */
  calibration?: CalibrationData;
  onCalibration?: (done: number, total: number) => void;
  onLog?: (line: string) => void;
}

/** Builds the engine for `ckpt` into `dir` (created if needed); returns its manifest. */
export function buildEngineDir(ckpt: Checkpoint, dir: string, opts: BuildRequest = {}, hooks: BuildHooks = {}): EngineManifest {
  const options = resolveBuildOptions(ckpt.config, opts, ckpt);
  const target = targetByName(options.target);
  const plan = planEngine(ckpt.config, options, DEFAULT_PASSES, keptPackedFormats(ckpt, options));
  checkOverridesMatch(options.quant?.overrides, matmulOnlyWeights(plan.graph));
  // w8a8: calibrate and smooth first (a bad calibration file fails before the dir is touched); its weights replace the recipes' values below
  const sq = options.quant?.scheme === "w8a8" ? smoothQuantWeights(plan.graph, ckpt.config, ckpt, options.quant, hooks.calibration, hooks.onCalibration) : undefined;
  sq?.log.forEach((l) => hooks.onLog?.(l));
  const woQuant = sq ? undefined : options.quant;
  // weight-only with calibration text: GPTQ, whose weights replace round-to-nearest's below
  const gq = woQuant?.method === "gptq" ? gptqWeights(plan.graph, ckpt.config, ckpt, woQuant, hooks.calibration, hooks.onCalibration) : undefined;
  gq?.log.forEach((l) => hooks.onLog?.(l));
  if (woQuant && !gq) hooks.onLog?.(`${woQuant.scheme}: round-to-nearest weights (no calibration text); pass --calib-data FILE to quantize with GPTQ instead`);
  mkdirSync(dir, { recursive: true });

  const weights = [...plan.graph.tensors].filter(([, d]) => d.kind === "weight") as [string, { kind: "weight"; shape: number[] }][];
  const total = Object.values(plan.report.weightBytes).reduce((a, b) => a + b, 0);
  const writer = new WeightsWriter(join(dir, WEIGHTS_FILE));
  const matmulOnly = matmulOnlyWeights(plan.graph);
  const readsPacked = target.createBackend(undefined, options).packedDTypes ?? [];
  const keepNative = options.quant !== undefined ? () => true : readsPacked.length > 0 ? (dtype: PackedDType) => readsPacked.includes(dtype) : null;
  const packed: { name: string; p: PackedBuild }[] = [];
  let bytes: number;
  try {
    let done = 0;
    for (const [name, d] of weights) {
      // a checkpoint's packed blocks (GGUF Q8_0 / Q4_0 / K-quants, AWQ / GPTQ) stay packed where the target's backend reads them so, or --quant asks for packing
      const w8a8 = sq?.packed.get(name);
      const calibrated = gq?.packed.get(name);
      const p: PackedBuild | null = w8a8 ? { packed: w8a8, origin: "quantized" } : calibrated ? { packed: calibrated, origin: "calibrated" } : packWeight(plan.graph, name, ckpt, quantFor(woQuant, name), keepNative, matmulOnly);
      let entry: TensorEntry;
      if (p) {
        entry = writer.add(name, p.packed.dtype, d.shape, encodePackedParts(p.packed), p.packed.layout);
        packed.push({ name, p });
      } else {
        const stored = storedWeight(plan.graph, name, ckpt, options.dtype, sq?.changed.get(name) ?? gq?.changed.get(name));
        entry = writer.add(name, stored.dtype, d.shape, stored.bytes);
      }
      done += entry.length;
      hooks.onProgress?.({ done, total, tensor: name });
    }
  } finally {
    bytes = writer.close();
  }
  // what the file holds (packed formats; an fp32 engine's exactly-16-bit matrices in 16 bits)
  const weightBytes: Record<string, number> = {};
  for (const e of writer.entries) weightBytes[e.dtype] = (weightBytes[e.dtype] ?? 0) + e.length;
  plan.report.weightBytes = weightBytes;
  if (packed.length) {
    plan.report.packed = [packedSummary(packed), sq?.summary, gq?.summary].filter(Boolean).join("; ");
    const held = target.describePacked?.(packed.map(({ name, p }) => ({ name, packed: p.packed })), options);
    if (held) hooks.onLog?.(held);
  }

  const manifest: EngineManifest = {
    format: ENGINE_FORMAT,
    version: packed.length ? PACKED_ENGINE_FORMAT_VERSION : ENGINE_FORMAT_VERSION,
    target: target.name,
    layout: target.layout,
    builtAt: new Date().toISOString(),
    source: { format: ckpt.format, path: ckpt.path, randomWeights: ckpt.format === "synthetic" },
    model: ckpt.config,
    build: options,
    graph: serializeGraph(plan.graph),
    memoryPlan: plan.memory,
    report: plan.report,
    tokenizer: writeTokenizerFiles(ckpt, dir),
    weights: { file: WEIGHTS_FILE, bytes, alignment: WEIGHT_ALIGNMENT, tensors: writer.entries },
  };
  for (const [rel, data] of hooks.files ?? []) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), data);
  }
  writeManifest(dir, manifest); // last: a dir without engine.json is an unfinished build
  return manifest;
}

/**
 * What a build did, in numbers: passes applied, ops before and after, kernels per layer
 * and per step, arena bytes against the naive sum, weight bytes by dtype. Stored in
 * engine.json; printed as the build log line and by `llmrt inspect`.
 */
import type { Graph } from "../graph/ir.js";
import type { PassRecord } from "../graph/passes/pipeline.js";
import type { MemoryPlan } from "../graph/passes/plan-memory.js";
import { kernelsByLayer, kernelsPerLayer, opCounts } from "../graph/stats.js";

export interface BuildReport {
  passes: PassRecord[];
  opsBefore: Record<string, number>;
  opsAfter: Record<string, number>;
  kernelsPerStep: { before: number; after: number };
  /** The usual count of a layer (the last one may carry one more op). */
  kernelsPerLayer: { before: number; after: number };
  kernelsByLayer: { before: number[]; after: number[] };
  /** Activation bytes: the planned arena, the same tensors each in its own buffer, and the unfused graph's. */
  arena: { bytes: number; naiveBytes: number; unfusedNaiveBytes: number };
  /** Bytes of stored weights by storage dtype. */
  weightBytes: Record<string, number>;
  /** Packed weights: what was packed and the ragged last groups (engine/packed-weights.ts). */
  packed?: string;
}

export function makeReport(plain: Graph, optimized: Graph, passes: PassRecord[], plan: MemoryPlan, unfusedNaiveBytes: number, weightBytes: Record<string, number>): BuildReport {
  return {
    passes,
    opsBefore: opCounts(plain),
    opsAfter: opCounts(optimized),
    kernelsPerStep: { before: plain.ops.length, after: optimized.ops.length },
    kernelsPerLayer: { before: kernelsPerLayer(plain), after: kernelsPerLayer(optimized) },
    kernelsByLayer: { before: kernelsByLayer(plain), after: kernelsByLayer(optimized) },
    arena: { bytes: plan.arenaBytes, naiveBytes: plan.naiveBytes, unfusedNaiveBytes },
    weightBytes,
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** "fused 5 QKV, 5 gate/up, ...; kernels per layer 17 -> 8 (per step 90 -> 45); arena 3.1 MB (naive 9.8 MB)" */
export function buildLogLine(r: BuildReport): string {
  const fused = r.passes.filter((p) => p.label && p.count > 0).map((p) => `${p.count} ${p.label}`);
  const other = r.passes.filter((p) => !p.label && p.summary).map((p) => p.summary);
  const parts = [
    ...(fused.length ? [`fused ${fused.join(", ")}`] : []),
    ...other,
    `kernels per layer ${r.kernelsPerLayer.before} -> ${r.kernelsPerLayer.after} (per step ${r.kernelsPerStep.before} -> ${r.kernelsPerStep.after})`,
    `arena ${formatBytes(r.arena.bytes)} (naive ${formatBytes(r.arena.naiveBytes)}; unfused ${formatBytes(r.arena.unfusedNaiveBytes)})`,
    ...(r.packed ? [r.packed] : []),
  ];
  return parts.join("; ");
}

/** Counts over a graph for reports: ops by kind, kernels per layer and per step, weight sizes. */
import { opLayer, type Graph } from "./ir.js";

/** Ops by kind, e.g. { matmul: 37, rmsnorm: 11, ... }. */
export function opCounts(g: Graph): Record<string, number> {
  const out: Record<string, number> = {};
  for (const op of g.ops) out[op.op] = (out[op.op] ?? 0) + 1;
  return out;
}

/** Kernels (ops) launched by each decoder layer, in layer order. */
export function kernelsByLayer(g: Graph): number[] {
  const out: number[] = [];
  for (const op of g.ops) {
    const l = opLayer(op);
    if (l !== null) out[l] = (out[l] ?? 0) + 1;
  }
  return Array.from(out, (n) => n ?? 0);
}

/** The most common per-layer kernel count (the last layer may carry a trailing op). */
export function kernelsPerLayer(g: Graph): number {
  const freq = new Map<number, number>();
  for (const n of kernelsByLayer(g)) freq.set(n, (freq.get(n) ?? 0) + 1);
  return [...freq].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? 0;
}

/** Elements of every weight declared. */
export function weightElements(g: Graph): number {
  let n = 0;
  for (const d of g.tensors.values()) if (d.kind === "weight") n += d.shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * What every pass is: a pure function Graph -> Graph with a name, and a one-line account
 * of what it did (for the build log), computed from the graphs before and after.
 */
import type { Graph, OpKind } from "../ir.js";

export interface Pass {
  name: string;
  /** What a fusion pass fuses, for reports ("QKV"); absent for other passes. */
  label?: string;
  run(g: Graph): Graph;
  /** E.g. "fused 5 QKV"; empty when the pass changed nothing. */
  describe(before: Graph, after: Graph): string;
  /** How many rewrites it made (for reports: "fused QKV x5"). */
  count(before: Graph, after: Graph): number;
}

/** Ops of `kind` in `after` that were not in `before` (ops are shared by identity). */
export function newOpsOfKind(before: Graph, after: Graph, kind: OpKind): number {
  const old = new Set(before.ops);
  return after.ops.filter((op) => op.op === kind && !old.has(op)).length;
}

/** A pass whose every rewrite creates one op of `kind`. */
export function fusionPass(name: string, label: string, kind: OpKind, run: (g: Graph) => Graph): Pass {
  const count = (b: Graph, a: Graph) => newOpsOfKind(b, a, kind);
  return {
    name,
    label,
    run,
    count,
    describe: (b, a) => (count(b, a) > 0 ? `fused ${count(b, a)} ${label}` : ""),
  };
}

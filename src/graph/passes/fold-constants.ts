/**
 * Constant folding: an op that reads no step data and only weights computes the same
 * value every step, so it becomes a weight, evaluated once at build time. The op itself
 * travels in the weight's recipe (a one-op graph the builder runs); this pass evaluates
 * nothing. Example: the rotary inverse frequencies.
 */
import { hasSideEffects, opInputs, opOutputs, readsStep, type Graph, type TensorDecl } from "../ir.js";
import { GraphEditor, sourceOf } from "../rewrite.js";
import type { Pass } from "./pass.js";

export function foldConstants(g: Graph): Graph {
  const ed = new GraphEditor(g);
  g.ops.forEach((op, i) => {
    if (readsStep(op) || hasSideEffects(op)) return;
    const ins = opInputs(op);
    const outs = opOutputs(op);
    if (!ins.every((t) => ed.tensors.get(t)?.kind === "weight")) return;
    // outputs of T or R rows change size with the step: not constants
    if (!outs.every((t) => { const d = ed.tensors.get(t); return d?.kind === "activation" && d.rows === "1"; })) return;
    const sub = new Map<string, TensorDecl>();
    for (const t of ins) sub.set(t, { ...(ed.tensors.get(t) as TensorDecl), source: sourceOf(ed.tensors, t) } as TensorDecl);
    for (const t of outs) sub.set(t, ed.tensors.get(t)!);
    const graph: Graph = { tensors: sub, ops: [op], outputs: outs };
    for (const t of outs) {
      const d = ed.tensors.get(t)!;
      const cols = d.kind === "activation" ? d.cols : 0;
      ed.tensors.set(t, { kind: "weight", shape: [cols], source: { kind: "fold", graph, out: t } });
    }
    ed.remove(i);
  });
  return ed.build();
}

export const foldConstantsPass: Pass = {
  name: "fold-constants",
  run: foldConstants,
  count: (b, a) => b.ops.length - a.ops.length,
  describe: (b, a) => (b.ops.length > a.ops.length ? `folded ${b.ops.length - a.ops.length} constant` : ""),
};

/**
 * Fuse residual add + RMSNorm: `s = a + b; n = rmsnorm(s)` becomes one add_rmsnorm op
 * that writes both s (the residual stream, still read later) and n, in one pass over
 * the row. Only whole-row norms of an add's output qualify.
 */
import { colsOf, type Graph } from "../ir.js";
import { GraphEditor, producers } from "../rewrite.js";
import { fusionPass } from "./pass.js";

export function fuseAddRmsnorm(g: Graph): Graph {
  const prod = producers(g);
  const ed = new GraphEditor(g);
  const used = new Set<number>();
  g.ops.forEach((op, i) => {
    if (op.op !== "rmsnorm" || op.groupSize !== colsOf(g, op.x)) return;
    const j = prod.get(op.x);
    const add = j === undefined ? undefined : g.ops[j];
    if (j === undefined || add?.op !== "add" || used.has(j)) return;
    used.add(j);
    // at the add's place: the norm's only other input is a weight, ready from the start
    ed.replace(j, { op: "add_rmsnorm", out: op.out, sum: add.out, a: add.a, b: add.b, weight: op.weight, eps: op.eps });
    ed.remove(i);
  });
  return ed.build();
}

export const fuseAddRmsnormPass = fusionPass("fuse-add-rmsnorm", "add+RMSNorm", "add_rmsnorm", fuseAddRmsnorm);

/**
 * Fuse gate + up: the two projections of a gated MLP, silu(x @ gate^T) * (x @ up^T),
 * become one matmul over a row-concatenated [gate|up, hidden] weight.
 */
import type { Graph } from "../ir.js";
import { producers } from "../rewrite.js";
import { fusionPass } from "./pass.js";
import { canFuseSiblings, fuseSiblingMatmuls } from "./sibling-matmuls.js";

export function fuseGateUp(g: Graph): Graph {
  const prod = producers(g);
  const groups: number[][] = [];
  for (const op of g.ops) {
    if (op.op !== "mul") continue;
    for (const [act, other] of [[op.a, op.b], [op.b, op.a]]) {
      const s = prod.get(act);
      const silu = s === undefined ? undefined : g.ops[s];
      if (silu?.op !== "silu") continue;
      const gate = prod.get(silu.x);
      const up = prod.get(other);
      if (gate === undefined || up === undefined) continue;
      if (canFuseSiblings(g, [gate, up])) groups.push([gate, up]);
      break;
    }
  }
  return fuseSiblingMatmuls(g, groups);
}

export const fuseGateUpPass = fusionPass("fuse-gate-up", "gate/up", "matmul", fuseGateUp);

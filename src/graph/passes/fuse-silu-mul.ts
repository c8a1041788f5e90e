/**
 * Fuse SiLU x mul: `silu(P[:, :I]) * P[:, I:]`, where P is the fused gate|up matmul's
 * output, becomes one silu_mul op reading the two halves of P in place. Needs the
 * gate/up fusion first (the halves must be one tensor); otherwise it changes nothing.
 */
import { colsOf, type Graph, type Op } from "../ir.js";
import { GraphEditor, absorbable, consumers, producers } from "../rewrite.js";
import { fusionPass } from "./pass.js";

export function fuseSiluMul(g: Graph): Graph {
  const prod = producers(g);
  const cons = consumers(g);
  const ed = new GraphEditor(g);
  const at = (name: string): [number, Op] | undefined => {
    const i = prod.get(name);
    return i === undefined ? undefined : [i, g.ops[i]];
  };
  g.ops.forEach((op, i) => {
    if (op.op !== "mul") return;
    for (const [act, other] of [[op.a, op.b], [op.b, op.a]]) {
      const silu = at(act);
      if (silu?.[1].op !== "silu") continue;
      const gate = at(silu[1].x);
      const up = at(other);
      if (gate?.[1].op !== "slice_cols" || up?.[1].op !== "slice_cols") continue;
      const I = colsOf(g, op.out);
      const packed = gate[1].x;
      if (up[1].x !== packed || gate[1].start !== 0 || up[1].start !== I || colsOf(g, packed) !== 2 * I) continue;
      const matched = new Set([i, silu[0], gate[0], up[0]]);
      ed.replace(i, { op: "silu_mul", out: op.out, x: packed });
      for (const j of [silu[0], gate[0], up[0]]) if (absorbable(g, cons, j, matched)) ed.remove(j);
      return;
    }
  });
  return ed.build();
}

export const fuseSiluMulPass = fusionPass("fuse-silu-mul", "SiLU*mul", "silu_mul", fuseSiluMul);

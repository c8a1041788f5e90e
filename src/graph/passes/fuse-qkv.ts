/**
 * Fuse QKV: the q, k and v projections of each attention layer become one matmul over a
 * row-concatenated [q|k|v, hidden] weight (bias concatenated too). Found by structure:
 * the matmuls that feed a layer's attention query (through q-norm/RoPE) and its KV write.
 */
import type { Graph, Op } from "../ir.js";
import { producers } from "../rewrite.js";
import { fusionPass } from "./pass.js";
import { canFuseSiblings, fuseSiblingMatmuls } from "./sibling-matmuls.js";

/** Follows `name` back through per-row ops (norm, RoPE) to the matmul producing it. */
function matmulBehind(g: Graph, prod: Map<string, number>, name: string): number | undefined {
  for (let t = name; ; ) {
    const i = prod.get(t);
    if (i === undefined) return undefined;
    const op: Op = g.ops[i];
    if (op.op === "matmul") return i;
    if (op.op === "rope" || op.op === "rmsnorm") t = op.x;
    else return undefined;
  }
}

export function fuseQkv(g: Graph): Graph {
  const prod = producers(g);
  const groups: number[][] = [];
  for (const op of g.ops) {
    if (op.op !== "attention") continue;
    const write = g.ops.find((w) => w.op === "kv_write" && w.layer === op.layer);
    if (!write || write.op !== "kv_write") continue;
    const group = [matmulBehind(g, prod, op.q), matmulBehind(g, prod, write.k), prod.get(write.v)];
    if (group.every((i): i is number => i !== undefined) && canFuseSiblings(g, group)) groups.push(group);
  }
  return fuseSiblingMatmuls(g, groups);
}

export const fuseQkvPass = fusionPass("fuse-qkv", "QKV", "matmul", fuseQkv);

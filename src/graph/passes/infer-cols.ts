/**
 * Shape inference for activations: recomputes every activation's cols from its op's
 * inputs, in op order, after a rewrite changed weight shapes (passes/shard.ts). Rows stay
 * as declared. Only the plain ops and the collectives: fused ops come later.
 */
import { colsOf, opOutputs, type Graph, type Op } from "../ir.js";

function colsOfOp(g: Graph, op: Op): number | null {
  switch (op.op) {
    case "matmul":
      return (g.tensors.get(op.w) as { shape: number[] }).shape[0];
    case "embedding":
    case "embedding_part":
      return colsOf(g, op.table);
    case "rmsnorm":
    case "rope":
    case "silu":
    case "gather_rows":
    case "all_reduce":
    case "send":
      return colsOf(g, op.x);
    case "mul":
    case "add":
      return colsOf(g, op.a);
    case "attention":
      return op.numHeads * op.headDim;
    case "all_gather":
      return op.parts.reduce((a, b) => a + b, 0);
    case "rope_inv_freq":
    case "recv":
    case "kv_write":
      return null; // unchanged, or writes no activation
    default:
      throw new Error(`infer-cols: ${op.op} is not a plain op; infer shapes before fusion`);
  }
}

/** Updates g.tensors in place (the caller owns the map). */
export function inferCols(g: Graph): void {
  for (const op of g.ops) {
    const cols = colsOfOp(g, op);
    if (cols === null) continue;
    const out = opOutputs(op)[0];
    const d = g.tensors.get(out);
    if (!d || d.kind !== "activation") throw new Error(`infer-cols: ${op.op} writes undeclared "${out}"`);
    if (d.cols !== cols) g.tensors.set(out, { ...d, cols });
  }
}

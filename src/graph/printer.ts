/**
 * Shows a graph readably, one op per line:
 *   l0.qkv [T,192] = matmul(l0.attn_in [T,64], blk.0.attn_qkv.weight [192,64], bias=blk.0.attn_qkv.bias [192])
 */
import { opInputs, opOutputs, type Graph, type Op } from "./ir.js";

export function tensorLabel(g: Graph, name: string): string {
  const d = g.tensors.get(name);
  if (!d) return `${name} [?]`;
  return d.kind === "activation" ? `${name} [${d.rows},${d.cols}]` : `${name} [${d.shape.join(",")}]`;
}

/** The op's scalar attributes, e.g. "eps=1e-5 group=64" or "layer=0 heads=8/4". */
function attrs(op: Op): string {
  switch (op.op) {
    case "rmsnorm":
      return `eps=${op.eps} group=${op.groupSize}`;
    case "add_rmsnorm":
      return `eps=${op.eps}`;
    case "slice_cols":
      return `start=${op.start}`;
    case "rope":
      return `${op.rotary.style} dim=${op.rotary.dim}/${op.headDim}`;
    case "rope_inv_freq":
      return `theta=${op.rope.theta} dim=${op.rope.dim} scaling=${op.rope.scaling.type}`;
    case "kv_write":
      return `layer=${op.layer}`;
    case "attention":
    case "attention_qkv": {
      const extra = op.op === "attention_qkv" ? ` rope=${op.rotary.style}/${op.rotary.dim}${op.qNorm ? " qk-norm" : ""}` : "";
      const win = op.slidingWindow === null ? "" : ` window=${op.slidingWindow}`;
      return `layer=${op.layer} heads=${op.numHeads}/${op.numKvHeads}x${op.headDim}${win}${extra}`;
    }
    case "embedding_part":
      return `vocab from ${op.vocabStart}`;
    case "all_gather":
      return `parts=${op.parts.join("+")}`;
    case "send":
    case "recv":
      return `peer=rank ${op.peer}`;
    default:
      return "";
  }
}

export function formatOp(g: Graph, op: Op): string {
  const outs = opOutputs(op).map((t) => tensorLabel(g, t));
  const ins = opInputs(op).map((t) => tensorLabel(g, t));
  const a = attrs(op);
  const call = `${op.op}(${ins.join(", ")}${a ? `; ${a}` : ""})`;
  return outs.length ? `${outs.join(", ")} = ${call}` : call;
}

/** The whole graph (or only the ops `keep` selects), numbered. */
export function printGraph(g: Graph, keep: (op: Op) => boolean = () => true): string {
  const lines: string[] = [];
  g.ops.forEach((op, i) => {
    if (keep(op)) lines.push(`${String(i).padStart(4)}  ${formatOp(g, op)}`);
  });
  lines.push(`  outputs: ${g.outputs.join(", ")}`);
  return lines.join("\n");
}

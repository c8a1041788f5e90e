/**
 * Dead tensor elimination: drops ops none of whose outputs is read (unless they write
 * the KV cache), then every tensor no remaining op or output mentions: the weights a
 * fusion replaced, the activations of absorbed ops.
 */
import { hasSideEffects, opInputs, opOutputs, type Graph, type TensorDecl } from "../ir.js";
import type { Pass } from "./pass.js";

export function eliminateDead(g: Graph): Graph {
  const live = new Set(g.outputs);
  const keep = new Array<boolean>(g.ops.length).fill(false);
  for (let i = g.ops.length - 1; i >= 0; i--) {
    const op = g.ops[i];
    if (!hasSideEffects(op) && !opOutputs(op).some((t) => live.has(t))) continue;
    keep[i] = true;
    for (const t of opInputs(op)) live.add(t);
  }
  const ops = g.ops.filter((_, i) => keep[i]);
  for (const op of ops) for (const t of opOutputs(op)) live.add(t); // unread outputs of kept ops stay declared
  const tensors = new Map<string, TensorDecl>([...g.tensors].filter(([name]) => live.has(name)));
  return { tensors, ops, outputs: [...g.outputs] };
}

export const eliminateDeadPass: Pass = {
  name: "eliminate-dead",
  run: eliminateDead,
  count: (b, a) => b.tensors.size - a.tensors.size,
  describe(b, a) {
    const ops = b.ops.length - a.ops.length;
    const tensors = b.tensors.size - a.tensors.size;
    return ops + tensors > 0 ? `removed ${tensors} dead tensors${ops ? ` and ${ops} dead ops` : ""}` : "";
  },
};

/**
 * Checks a graph is well formed: every op reads declared tensors that exist by then
 * (weights, or activations written by an earlier op), writes each activation once, and
 * every output is written. Passes must keep this; tests check it after each one.
 */
import { opInputs, opOutputs, type Graph } from "./ir.js";

export function validateGraph(g: Graph): void {
  const written = new Set<string>();
  g.ops.forEach((op, i) => {
    const where = `op ${i} (${op.op})`;
    for (const t of opInputs(op)) {
      const d = g.tensors.get(t);
      if (!d) throw new Error(`graph: ${where} reads undeclared "${t}"`);
      if (d.kind === "activation" && !written.has(t)) throw new Error(`graph: ${where} reads "${t}" before it is written`);
    }
    for (const t of opOutputs(op)) {
      const d = g.tensors.get(t);
      if (!d || d.kind !== "activation") throw new Error(`graph: ${where} writes "${t}", which is not a declared activation`);
      if (written.has(t)) throw new Error(`graph: ${where} writes "${t}" a second time`);
      written.add(t);
    }
  });
  for (const t of g.outputs) if (!written.has(t)) throw new Error(`graph: output "${t}" is never written`);
}

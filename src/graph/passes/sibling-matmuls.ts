/**
 * The rewrite behind QKV and gate/up fusion: matmuls that read the same input become
 * one matmul over their weights concatenated by rows (biases too), followed by column
 * slices that give each old output back under its old name, so every reader is
 * unchanged. Later passes fuse the slices away. The concatenation is a weight recipe
 * for the builder; nothing is computed here.
 */
import type { Graph, Op, WeightSource } from "../ir.js";
import { GraphEditor, fusedName, sourceOf } from "../rewrite.js";

type Matmul = Extract<Op, { op: "matmul" }>;

/** True when the matmuls at these indices can be fused: same input, all or none biased, weights kept in one packed format (or none). */
export function canFuseSiblings(g: Graph, idx: number[]): boolean {
  const ms = idx.map((i) => g.ops[i]);
  if (!ms.every((m): m is Matmul => m.op === "matmul")) return false;
  const m0 = ms[0] as Matmul;
  const stored = (m: Matmul) => (g.tensors.get(m.w) as { stored?: string } | undefined)?.stored;
  return ms.every((m) => (m as Matmul).x === m0.x && Boolean((m as Matmul).bias) === Boolean(m0.bias) && stored(m as Matmul) === stored(m0)) && new Set(idx).size === idx.length;
}

/** Fuses each group of sibling matmul indices (check canFuseSiblings first). */
export function fuseSiblingMatmuls(g: Graph, groups: number[][]): Graph {
  const ed = new GraphEditor(g);
  for (const group of groups) {
    const ms = group.map((i) => g.ops[i] as Matmul);
    const shapes = ms.map((m) => (g.tensors.get(m.w) as { shape: number[] }).shape);
    const n = shapes.reduce((s, [rows]) => s + rows, 0);
    const concat = (names: string[], shape: number[]) => {
      const parts: WeightSource[] = names.map((w) => sourceOf(g.tensors, w));
      return ed.declare(fusedName(names, ed.tensors), { kind: "weight", shape, source: { kind: "concat", parts } });
    };
    const w = concat(ms.map((m) => m.w), [n, shapes[0][1]]);
    const bias = ms[0].bias ? concat(ms.map((m) => m.bias!), [n]) : undefined;
    const xDecl = g.tensors.get(ms[0].x)!;
    const rows = xDecl.kind === "activation" ? xDecl.rows : "T";
    const out = ed.declare(fusedName(ms.map((m) => m.out), ed.tensors), { kind: "activation", rows, cols: n });

    const first = Math.min(...group);
    const fused: Op[] = [bias ? { op: "matmul", out, x: ms[0].x, w, bias } : { op: "matmul", out, x: ms[0].x, w }];
    let start = 0;
    ms.forEach((m, k) => {
      fused.push({ op: "slice_cols", out: m.out, x: out, start });
      start += shapes[k][0];
    });
    ed.insertBefore(first, ...fused);
    for (const i of group) ed.remove(i);
  }
  return ed.build();
}

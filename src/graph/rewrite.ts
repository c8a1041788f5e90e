/**
 * Small tools the passes share: who produces and who reads each tensor, fresh names,
 * and a copy-on-write editor so that a pass never mutates the graph it was given.
 */
import { opInputs, opOutputs, type Graph, type Op, type TensorDecl, type WeightSource } from "./ir.js";

/** Index of the op writing each tensor. */
export function producers(g: Graph): Map<string, number> {
  const out = new Map<string, number>();
  g.ops.forEach((op, i) => opOutputs(op).forEach((t) => out.set(t, i)));
  return out;
}

/** Indices of the ops reading each tensor, in order; graph outputs count as a reader at ops.length. */
export function consumers(g: Graph): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const add = (t: string, i: number) => (out.get(t) ?? out.set(t, []).get(t)!).push(i);
  g.ops.forEach((op, i) => opInputs(op).forEach((t) => add(t, i)));
  g.outputs.forEach((t) => add(t, g.ops.length));
  return out;
}

/** The weight's recipe, defaulting to the checkpoint tensor of the same name. */
export function sourceOf(tensors: ReadonlyMap<string, TensorDecl>, name: string): WeightSource {
  const d = tensors.get(name);
  if (!d || d.kind !== "weight") throw new Error(`graph: "${name}" is not a weight`);
  return d.source ?? { kind: "checkpoint", name };
}

/**
 * Whether op `i` can be dropped once the ops in `matched` are replaced by a fused op:
 * every reader of its outputs is among them (and no output is a graph output).
 */
export function absorbable(g: Graph, cons: Map<string, number[]>, i: number, matched: ReadonlySet<number>): boolean {
  return opOutputs(g.ops[i]).every((t) => (cons.get(t) ?? []).every((c) => matched.has(c)));
}

/**
 * A readable name for the fusion of several tensors: the common prefix and suffix kept,
 * the middles joined ("blk.0.attn_q.weight" + k + v -> "blk.0.attn_qkv.weight",
 * "l0.gate" + "l0.up" -> "l0.gate_up"). Made unique against `taken`.
 */
export function fusedName(names: string[], taken: ReadonlyMap<string, unknown>): string {
  let pre = 0;
  while (names.every((n) => pre < n.length && n[pre] === names[0][pre])) pre++;
  let suf = 0;
  while (names.every((n) => suf < n.length - pre && n[n.length - 1 - suf] === names[0][names[0].length - 1 - suf])) suf++;
  // keep only whole-word affixes: back off to a "." or "_" boundary
  while (pre > 0 && !"._".includes(names[0][pre - 1])) pre--;
  while (suf > 0 && !"._".includes(names[0][names[0].length - suf])) suf--;
  const mids = names.map((n) => n.slice(pre, n.length - suf));
  const mid = mids.every((m) => m.length === 1) ? mids.join("") : mids.join("_");
  const base = names[0].slice(0, pre) + mid + names[0].slice(names[0].length - suf);
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}#${i}`;
  return name;
}

/**
 * A graph under rewrite: tensors copied, ops replaced by index. Ops are immutable values
 * shared with the input graph; only the containers are new.
 */
export class GraphEditor {
  readonly tensors: Map<string, TensorDecl>;
  private readonly ops: (Op | null)[];
  private readonly inserted = new Map<number, Op[]>();

  constructor(readonly source: Graph) {
    this.tensors = new Map(source.tensors);
    this.ops = [...source.ops];
  }

  declare(name: string, decl: TensorDecl): string {
    if (this.tensors.has(name)) throw new Error(`graph: tensor "${name}" declared twice`);
    this.tensors.set(name, decl);
    return name;
  }

  remove(i: number): void {
    this.ops[i] = null;
  }

  replace(i: number, op: Op): void {
    this.ops[i] = op;
  }

  /** Puts ops right before the op at index i of the source graph. */
  insertBefore(i: number, ...ops: Op[]): void {
    this.inserted.set(i, [...(this.inserted.get(i) ?? []), ...ops]);
  }

  build(): Graph {
    const ops: Op[] = [];
    this.ops.forEach((op, i) => {
      ops.push(...(this.inserted.get(i) ?? []));
      if (op) ops.push(op);
    });
    return { tensors: this.tensors, ops, outputs: [...this.source.outputs] };
  }
}

/**
 * Tensor parallelism (Megatron style) for rank `rank` of a group of `tp`, run on the
 * plain graph before fusion. Found by structure, so no model is named here:
 *   - the q/k/v projections feeding an attention op are column-parallel: each rank keeps
 *     its query heads and its KV heads (or, with fewer KV heads than ranks, the one KV
 *     head its query heads read: replicated); the attention op covers those heads only;
 *   - the projection reading the attention output is row-parallel (its input columns are
 *     those heads) and is followed by an all_reduce;
 *   - gate/up of a gated MLP are column-parallel, down is row-parallel + all_reduce;
 *   - the embedding and the head are vocabulary-parallel: embedding_part + all_reduce,
 *     and the head's rows of the vocabulary + all_gather of the logits.
 * Norms and residual adds are replicated. Weights become slice recipes; a split op
 * writes "<out>.part" and the collective writes the old name, so readers are unchanged.
 */
import { opInputs, type Graph, type Op, type TensorDecl, type WeightDecl } from "../ir.js";
import { producers, sourceOf } from "../rewrite.js";
import { inferCols } from "./infer-cols.js";
import type { Pass } from "./pass.js";

type OpOf<K extends Op["op"]> = Extract<Op, { op: K }>;
type Range = [number, number];

/** [start, end) of part i when n items are split over `parts`: balanced, earlier parts take the remainder. */
export function splitRange(n: number, parts: number, i: number): Range {
  const base = Math.floor(n / parts);
  const extra = n % parts;
  const at = (k: number) => k * base + Math.min(k, extra);
  return [at(i), at(i + 1)];
}

/** The query heads and KV heads rank `rank` of `tp` owns. */
export function headsOf(numHeads: number, numKvHeads: number, tp: number, rank: number): { q: Range; kv: Range } {
  if (numHeads % tp !== 0) throw new Error(`shard: ${numHeads} attention heads do not split over ${tp} ranks`);
  const q: Range = [(rank * numHeads) / tp, ((rank + 1) * numHeads) / tp];
  if (numKvHeads % tp === 0) return { q, kv: [(rank * numKvHeads) / tp, ((rank + 1) * numKvHeads) / tp] };
  if (tp % numKvHeads !== 0) throw new Error(`shard: ${numKvHeads} KV heads neither split over ${tp} ranks nor divide them`);
  const kv = Math.floor((rank * numKvHeads) / tp); // replicated: the one KV head this rank's query heads read
  return { q, kv: [kv, kv + 1] };
}

export interface ShardReport {
  tp: number;
  rank: number;
  /** The heads of the first attention layer this rank owns (every layer has the same split). */
  heads: { q: Range; kv: Range } | null;
  columnParallel: number;
  rowParallel: number;
  vocabParallel: number;
}

class Sharder {
  readonly tensors: Map<string, TensorDecl>;
  /** Replacement ops for an original op index (a split op and its collective). */
  readonly replace = new Map<number, Op[]>();
  readonly prod: Map<string, number>;
  readonly report: ShardReport;

  constructor(
    readonly g: Graph,
    tp: number,
    rank: number,
  ) {
    this.tensors = new Map(g.tensors);
    this.prod = producers(g);
    this.report = { tp, rank, heads: null, columnParallel: 0, rowParallel: 0, vocabParallel: 0 };
  }

  weight(name: string): WeightDecl {
    const d = this.g.tensors.get(name);
    if (!d || d.kind !== "weight") throw new Error(`shard: "${name}" is not a weight`);
    return d;
  }

  /** Keeps rows (axis 0) or columns (axis 1) [start, end) of weight `name` on this rank. */
  slice(name: string | undefined, axis: 0 | 1, [start, end]: Range): void {
    if (name === undefined) return;
    const d = this.weight(name);
    const shape = [...d.shape];
    shape[axis] = end - start;
    this.tensors.set(name, { kind: "weight", shape, source: { kind: "slice", of: sourceOf(this.g.tensors, name), shape: d.shape, axis, start, count: end - start } });
  }

  /** The matmul writing `name`, through per-row ops (norm, RoPE). */
  matmulBehind(name: string): number | undefined {
    for (let t = name; ; ) {
      const i = this.prod.get(t);
      const op = i === undefined ? undefined : this.g.ops[i];
      if (op?.op === "matmul") return i;
      if (op?.op !== "rope" && op?.op !== "rmsnorm") return undefined;
      t = op.x;
    }
  }

  /** The one matmul reading `name`, if exactly one does. */
  matmulReading(name: string): number | undefined {
    const rs = this.g.ops.flatMap((op, i) => (op.op === "matmul" && opInputs(op).includes(name) ? [i] : []));
    return rs.length === 1 ? rs[0] : undefined;
  }

  matmul(i: number): OpOf<"matmul"> {
    return this.g.ops[i] as OpOf<"matmul">;
  }

  /** Column-parallel: output rows [lo, hi) * unit of the [out, in] weight (and bias). */
  column(i: number, [lo, hi]: Range, unit = 1): void {
    const m = this.matmul(i);
    this.slice(m.w, 0, [lo * unit, hi * unit]);
    this.slice(m.bias, 0, [lo * unit, hi * unit]);
    this.report.columnParallel++;
  }

  /** Row-parallel: input columns [lo, hi) * unit; partial sums all-reduced under the old name. */
  row(i: number, [lo, hi]: Range, unit = 1): void {
    const m = this.matmul(i);
    if (m.bias) throw new Error(`shard: row-parallel ${m.out} has a bias (every rank would add it)`);
    this.slice(m.w, 1, [lo * unit, hi * unit]);
    this.split(i, { ...m, out: `${m.out}.part` }, { op: "all_reduce", out: m.out, x: `${m.out}.part` });
    this.report.rowParallel++;
  }

  /** Op i becomes `op` (writing "<out>.part") followed by `collective` (writing out). */
  split(i: number, op: Op, collective: OpOf<"all_reduce"> | OpOf<"all_gather">): void {
    this.tensors.set(collective.x, { ...this.tensors.get(collective.out)! });
    this.replace.set(i, [op, collective]);
  }
}

function shardAttention(s: Sharder, i: number, op: OpOf<"attention">, tp: number, rank: number): void {
  const write = s.g.ops.find((w): w is OpOf<"kv_write"> => w.op === "kv_write" && w.layer === op.layer);
  const q = s.matmulBehind(op.q);
  const k = write && s.matmulBehind(write.k);
  const v = write && s.matmulBehind(write.v);
  const o = s.matmulReading(op.out);
  if (q === undefined || k === undefined || v === undefined || o === undefined) {
    throw new Error(`shard: the attention of layer ${op.layer} has no q/k/v/output projections to split`);
  }
  const h = headsOf(op.numHeads, op.numKvHeads, tp, rank);
  s.report.heads ??= h;
  s.column(q, h.q, op.headDim);
  s.column(k, h.kv, op.headDim);
  s.column(v, h.kv, op.headDim);
  s.row(o, h.q, op.headDim);
  s.replace.set(i, [{ ...op, numHeads: h.q[1] - h.q[0], numKvHeads: h.kv[1] - h.kv[0] }]);
}

/** silu(x @ gate^T) * (x @ up^T), then @ down^T: split the intermediate columns. */
function shardMlp(s: Sharder, op: OpOf<"mul">, tp: number, rank: number): void {
  for (const [act, other] of [[op.a, op.b], [op.b, op.a]]) {
    const si = s.prod.get(act);
    const silu = si === undefined ? undefined : s.g.ops[si];
    if (silu?.op !== "silu") continue;
    const gate = s.matmulBehind(silu.x);
    const up = s.matmulBehind(other);
    const down = s.matmulReading(op.out);
    if (gate === undefined || up === undefined || down === undefined) continue;
    const r = splitRange(s.weight(s.matmul(gate).w).shape[0], tp, rank);
    s.column(gate, r);
    s.column(up, r);
    s.row(down, r);
    return;
  }
}

/** The embedding table and the head: this rank's rows of the vocabulary. */
function shardVocab(s: Sharder, i: number, op: Op, tp: number, rank: number): void {
  if (op.op === "embedding") {
    const r = splitRange(s.weight(op.table).shape[0], tp, rank);
    s.slice(op.table, 0, r);
    s.split(i, { op: "embedding_part", out: `${op.out}.part`, table: op.table, vocabStart: r[0] }, { op: "all_reduce", out: op.out, x: `${op.out}.part` });
    s.report.vocabParallel++;
  } else if (op.op === "matmul" && s.g.outputs.includes(op.out)) {
    const V = s.weight(op.w).shape[0];
    const parts = Array.from({ length: tp }, (_, k) => splitRange(V, tp, k)).map(([a, b]) => b - a);
    const r = splitRange(V, tp, rank);
    s.slice(op.w, 0, r); // a head tied to the embedding gets the same rows, sliced once
    s.slice(op.bias, 0, r);
    s.split(i, { ...op, out: `${op.out}.part` }, { op: "all_gather", out: op.out, x: `${op.out}.part`, parts });
    s.report.vocabParallel++;
  }
}

const FUSED = new Set<Op["op"]>(["attention_qkv", "silu_mul", "slice_cols", "add_rmsnorm"]);

/** Rank `rank`'s share of the plain graph `g` over `tp` ranks (tp = 1 returns g unchanged). */
export function shardTensorParallel(g: Graph, tp: number, rank: number): { graph: Graph; report: ShardReport } {
  const s = new Sharder(g, tp, rank);
  if (tp === 1) return { graph: g, report: s.report };
  if (!Number.isInteger(rank) || rank < 0 || rank >= tp) throw new Error(`shard: rank ${rank} is not in [0, ${tp})`);
  if (g.ops.some((op) => FUSED.has(op.op))) throw new Error("shard: runs on the plain graph, before the fusion passes");
  g.ops.forEach((op, i) => {
    if (op.op === "attention") shardAttention(s, i, op, tp, rank);
    else if (op.op === "mul") shardMlp(s, op, tp, rank);
    else shardVocab(s, i, op, tp, rank);
  });
  const graph: Graph = { tensors: s.tensors, ops: g.ops.flatMap((op, i) => s.replace.get(i) ?? [op]), outputs: [...g.outputs] };
  inferCols(graph);
  return { graph, report: s.report };
}

/** The pass form, for the build log: "rank 1 of 2: heads 4..7, KV heads 2..3; 12 column-, 10 row-, 2 vocab-parallel". */
export function shardPass(tp: number, rank: number): Pass {
  let last: ShardReport | null = null;
  return {
    name: "shard-tp",
    run(g) {
      const r = shardTensorParallel(g, tp, rank);
      last = r.report;
      return r.graph;
    },
    count: () => (last ? last.columnParallel + last.rowParallel + last.vocabParallel : 0),
    describe() {
      if (!last || tp === 1) return "";
      const h = last.heads ? `heads ${last.heads.q[0]}..${last.heads.q[1] - 1}, KV heads ${last.heads.kv[0]}..${last.heads.kv[1] - 1}; ` : "";
      return `rank ${rank} of ${tp}: ${h}${last.columnParallel} column-, ${last.rowParallel} row-, ${last.vocabParallel} vocab-parallel`;
    },
  };
}

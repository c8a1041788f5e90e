/**
 * The reference backend: interprets the graph op by op with the plain definitions in
 * ops.ts. Slow and obviously right; every other backend is tested against it.
 */
import type { Backend, BoundGraph, KvCacheShape, WeightMap } from "../backend.js";
import type { Graph, Op } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import * as ops from "./ops.js";

export class ReferenceBackend implements Backend {
  readonly name = "reference";

  bind(graph: Graph, weights: WeightMap, kv: KvCacheShape): BoundGraph {
    for (const [name, decl] of graph.tensors) {
      if (decl.kind !== "weight") continue;
      const w = weights.get(name);
      const want = decl.shape.reduce((a, b) => a * b, 1);
      if (!w) throw new Error(`reference backend: weight "${name}" missing`);
      if (w.length !== want) throw new Error(`reference backend: weight "${name}" has ${w.length} values, want ${want}`);
    }
    return new ReferenceBound(graph, weights, kv);
  }
}

class ReferenceBound implements BoundGraph {
  private readonly cache: ops.LayerCache[];
  readonly kvBytes: number;

  constructor(
    private readonly graph: Graph,
    private readonly weights: WeightMap,
    readonly kv: KvCacheShape,
  ) {
    const slots = kv.numBlocks * kv.blockSize;
    const kvDim = kv.numKvHeads * kv.headDim;
    this.cache = Array.from({ length: kv.numLayers }, () => ({
      k: new Float32Array(slots * kvDim), // [slots, kvHeads*headDim]
      v: new Float32Array(slots * kvDim),
    }));
    this.kvBytes = 2 * kv.numLayers * slots * kvDim * 4;
  }

  copyBlock(src: number, dst: number): void {
    const n = this.kv.blockSize * this.kv.numKvHeads * this.kv.headDim;
    for (const layer of this.cache) {
      layer.k.copyWithin(dst * n, src * n, (src + 1) * n);
      layer.v.copyWithin(dst * n, src * n, (src + 1) * n);
    }
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    const acts = new Map<string, Float32Array>();
    const get = (name: string): Float32Array => {
      const t = acts.get(name) ?? this.weights.get(name);
      if (!t) throw new Error(`reference backend: tensor "${name}" read before it was written`);
      return t;
    };
    const alloc = (name: string): Float32Array => {
      const d = this.graph.tensors.get(name);
      if (!d || d.kind !== "activation") throw new Error(`reference backend: "${name}" is not an activation`);
      const rows = d.rows === "T" ? step.numTokens : step.logitRows.length;
      const buf = new Float32Array(rows * d.cols);
      acts.set(name, buf);
      return buf;
    };
    for (const op of this.graph.ops) this.run(op, step, get, alloc);
    return new Map(this.graph.outputs.map((o) => [o, get(o)]));
  }

  private run(
    op: Op,
    step: StepBatch,
    get: (n: string) => Float32Array,
    alloc: (n: string) => Float32Array,
  ): void {
    const colsOf = (name: string) => {
      const d = this.graph.tensors.get(name)!;
      return d.kind === "activation" ? d.cols : d.shape[d.shape.length - 1];
    };
    switch (op.op) {
      case "embedding":
        return ops.embedding(alloc(op.out), get(op.table), step.tokenIds, colsOf(op.table));
      case "rmsnorm":
        return ops.rmsnorm(alloc(op.out), get(op.x), get(op.weight), op.eps, op.groupSize);
      case "matmul": {
        const x = get(op.x);
        const K = colsOf(op.x);
        const N = colsOf(op.out);
        const bias = op.bias ? get(op.bias) : undefined;
        return ops.matmul(alloc(op.out), x, get(op.w), bias, x.length / K, K, N);
      }
      case "rope":
        return ops.rope(alloc(op.out), get(op.x), step.positions, op.headDim, op.rope);
      case "kv_write":
        return ops.kvWrite(this.cache[op.layer], get(op.k), get(op.v), step.slotMapping);
      case "attention":
        return ops.attention(alloc(op.out), get(op.q), this.cache[op.layer], step, this.kv.blockSize, op);
      case "silu_mul":
        return ops.siluMul(alloc(op.out), get(op.gate), get(op.up));
      case "add":
        return ops.add(alloc(op.out), get(op.a), get(op.b));
      case "gather_rows":
        return ops.gatherRows(alloc(op.out), get(op.x), step.logitRows, colsOf(op.x));
    }
  }
}

/**
 * The reference backend: interprets the graph op by op with the plain definitions in
 * ops.ts and fused.ts. Slow and obviously right; every other backend is tested against it.
 * With a memory plan, every activation is a view into one arena at its planned offset.
 */
import { refuseFp8Kv, type Backend, type BoundGraph, type KvCacheShape, type PackedWeightMap, type WeightMap } from "../backend.js";
import type { PackedDType } from "../../quant/packed.js";
import type { Collectives } from "../collectives.js";
import type { Graph } from "../../graph/ir.js";
import { rowsFor, type MemoryPlan } from "../../graph/passes/plan-memory.js";
import type { StepBatch } from "../../graph/step-batch.js";
import { KvPlane } from "./kv-plane.js";
import type { LayerCache } from "./ops.js";
import { runOp } from "./run-op.js";

export interface ReferenceBackendOptions {
  /** The other ranks, for a sharded graph's collective ops (parallel/); absent for one rank. */
  comm?: Collectives;
}

export class ReferenceBackend implements Backend {
  readonly name = "reference";
  readonly packedDTypes: readonly PackedDType[] = ["int8", "int4", "w8a8", "q4_k", "q5_k", "q6_k"];

  constructor(private readonly opts: ReferenceBackendOptions = {}) {}

  bind(graph: Graph, weights: WeightMap, kv: KvCacheShape, plan?: MemoryPlan, packed: PackedWeightMap = new Map()): BoundGraph {
    refuseFp8Kv(kv, "reference");
    for (const [name, decl] of graph.tensors) {
      if (decl.kind !== "weight") continue;
      const p = packed.get(name);
      if (p) {
        if (p.rows !== decl.shape[0] || p.cols !== decl.shape[1]) throw new Error(`reference backend: packed weight "${name}" is [${p.rows}, ${p.cols}], want [${decl.shape.join(", ")}]`);
        continue;
      }
      const w = weights.get(name);
      const want = decl.shape.reduce((a, b) => a * b, 1);
      if (!w) throw new Error(`reference backend: weight "${name}" missing`);
      if (w.length !== want) throw new Error(`reference backend: weight "${name}" has ${w.length} values, want ${want}`);
    }
    return new ReferenceBound(graph, weights, kv, plan, this.opts.comm, packed);
  }
}

class ReferenceBound implements BoundGraph {
  private readonly cache: LayerCache[];
  readonly kvBytes: number;
  /** [arenaBytes / 4]: every activation of a step, at the plan's offsets. */
  private readonly arena: Float32Array | null;

  constructor(
    private readonly graph: Graph,
    private readonly weights: WeightMap,
    readonly kv: KvCacheShape,
    private readonly plan?: MemoryPlan,
    private readonly comm?: Collectives,
    private readonly packed: PackedWeightMap = new Map(),
  ) {
    const slots = kv.numBlocks * kv.blockSize;
    const kvDim = kv.numKvHeads * kv.headDim;
    const dtype = kv.dtype ?? "f32";
    this.cache = Array.from({ length: kv.numLayers }, () => ({
      k: new KvPlane(dtype, slots, kvDim, kv.headDim), // [slots, kvHeads*headDim] (+ int8 scales [slots, kvHeads])
      v: new KvPlane(dtype, slots, kvDim, kv.headDim),
    }));
    this.kvBytes = this.cache.reduce((n, c) => n + c.k.bytes + c.v.bytes, 0);
    this.arena = plan ? new Float32Array(plan.arenaBytes / 4) : null;
  }

  copyBlock(src: number, dst: number): void {
    const bs = this.kv.blockSize;
    for (const layer of this.cache) {
      layer.k.copySlots(src * bs, dst * bs, bs);
      layer.v.copySlots(src * bs, dst * bs, bs);
    }
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    const cap = { T: step.numTokens, R: step.logitRows.length };
    if (this.plan && (cap.T > this.plan.capacity.T || cap.R > this.plan.capacity.R)) {
      throw new RangeError(`reference backend: step of ${cap.T} tokens / ${cap.R} logit rows exceeds the planned ${this.plan.capacity.T} / ${this.plan.capacity.R}`);
    }
    const acts = new Map<string, Float32Array>();
    const get = (name: string): Float32Array => {
      const t = acts.get(name) ?? this.weights.get(name);
      if (!t) throw new Error(`reference backend: tensor "${name}" read before it was written`);
      return t;
    };
    const out = (name: string): Float32Array => {
      const d = this.graph.tensors.get(name);
      if (!d || d.kind !== "activation") throw new Error(`reference backend: "${name}" is not an activation`);
      const n = rowsFor(d.rows, cap) * d.cols;
      let buf: Float32Array;
      if (this.arena && this.plan) {
        const at = this.plan.offsets[name] / 4;
        if (at === undefined || Number.isNaN(at)) throw new Error(`reference backend: "${name}" has no place in the memory plan`);
        buf = this.arena.subarray(at, at + n);
      } else {
        buf = new Float32Array(n);
      }
      acts.set(name, buf);
      return buf;
    };
    const ctx = { graph: this.graph, step, cache: this.cache, blockSize: this.kv.blockSize, comm: this.comm, get, out, packed: (name: string) => this.packed.get(name) };
    for (const op of this.graph.ops) runOp(op, ctx);
    // copies: the arena is overwritten by the next step
    return new Map(this.graph.outputs.map((o) => [o, get(o).slice()]));
  }
}

/**
 * Graph op -> kernel calls. One function per op kind, all appending to the step's
 * program; sizes come from the step (T tokens, R logit rows), pointers from the
 * tensor table. The fused attention_qkv op becomes two calls (per-token prep and K/V
 * write, then attention) with the barrier between them; sequences long enough for the
 * BLAS path (blas-attention.ts, run by the backend after the prep) are skipped by the latter.
 */
import { colsOf, type AttentionGeometry, type Graph, type Op } from "../../graph/ir.js";
import { rowsFor, type PlanCapacity } from "../../graph/passes/plan-memory.js";
import { DTYPE_CODE, ELEMENTWISE, OP, ROPE_STYLE, fbits, type ProgramWriter } from "./program.js";
import type { WeightDType } from "./layout.js";
import type { StepData } from "./step-data.js";
import type { TensorTable } from "./tensors.js";

export interface EmitContext {
  graph: Graph;
  tensors: TensorTable;
  step: StepData;
  cap: PlanCapacity;
  /** K and V planes of each layer: [slots, row] in kvDtype (row layout: assembly/kv.ts). */
  cache: { k: number; v: number }[];
  /** KV_DTYPE_CODE of the cache. */
  kvDtype: number;
  /** The model's head dimension (int8 rows hold one scale per head). */
  kvHeadDim: number;
  blockSize: number;
  /** Sequences of at least this many tokens are the BLAS path's (blas-attention.ts), which the WASM attention kernel skips; 0: none. */
  attentionSkip: number;
  /** Whether any sequence of the step is left to the WASM attention kernel. */
  wasmAttention: boolean;
}

/** Rows of a tensor in this step (activations: per the step's size; weights: 1). */
export function rows(c: EmitContext, name: string): number {
  const d = c.graph.tensors.get(name);
  return d?.kind === "activation" ? rowsFor(d.rows, c.cap) : 1;
}

function attentionArgs(c: EmitContext, out: number, q: number, g: AttentionGeometry): number[] {
  const kv = c.cache[g.layer];
  return [out, q, kv.k, kv.v, c.step.ptr, g.numHeads, g.numKvHeads, g.headDim, fbits(g.scale), g.slidingWindow ?? 0, c.blockSize, c.kvDtype, c.attentionSkip];
}

export function emitOp(p: ProgramWriter, op: Op, c: EmitContext): void {
  const at = (name: string) => c.tensors.ptr(name);
  const cols = (name: string) => colsOf(c.graph, name);
  const T = c.cap.T;
  switch (op.op) {
    case "embedding": {
      const table = c.tensors.weights.get(op.table)!;
      p.emit(OP.EMBEDDING, at(op.out), table.ptr, DTYPE_CODE[table.dtype as WeightDType], c.step.field("ids"), T, cols(op.table));
      return;
    }
    case "rmsnorm": {
      const n = rows(c, op.x) * cols(op.x);
      p.emit(OP.RMSNORM, at(op.out), at(op.x), at(op.weight), n / op.groupSize, op.groupSize, fbits(op.eps));
      return;
    }
    case "add_rmsnorm":
      p.emit(OP.ADD_RMSNORM, at(op.out), at(op.sum), at(op.a), at(op.b), at(op.weight), rows(c, op.a), cols(op.a), fbits(op.eps));
      return;
    case "matmul": {
      const w = c.tensors.weights.get(op.w);
      if (!w) throw new Error(`cpu backend: matmul weight "${op.w}" is not a weight`);
      const [N, K] = w.shape;
      const q = w.packed;
      if (q) {
        p.emit(OP.MATMUL_Q, at(op.out), at(op.x), w.ptr, q.scales, q.zeros, q.code, q.groupSize, op.bias ? at(op.bias) : 0, rows(c, op.x), K, N);
        return;
      }
      p.emit(OP.MATMUL, at(op.out), at(op.x), w.ptr, DTYPE_CODE[w.dtype as WeightDType], op.bias ? at(op.bias) : 0, rows(c, op.x), K, N, w.colBlock ?? 0);
      return;
    }
    case "slice_cols":
      p.emit(OP.SLICE_COLS, at(op.out), at(op.x), rows(c, op.x), cols(op.x), op.start, cols(op.out));
      return;
    case "rope_inv_freq":
      return; // a constant, computed at bind
    case "rope":
      p.emit(OP.ROPE, at(op.out), at(op.x), c.step.field("positions"), at(op.invFreq), T, cols(op.x), op.headDim, op.rotary.dim, ROPE_STYLE[op.rotary.style]);
      return;
    case "kv_write": {
      const kv = c.cache[op.layer];
      p.emit(OP.KV_WRITE, kv.k, kv.v, at(op.k), at(op.v), c.step.field("slots"), T, cols(op.k), c.kvDtype, c.kvHeadDim);
      return;
    }
    case "attention":
      if (c.wasmAttention) p.emit(OP.ATTENTION, ...attentionArgs(c, at(op.out), at(op.q), op));
      return;
    case "attention_qkv": {
      const kv = c.cache[op.layer];
      p.emit(OP.QKV_PREP, at(op.q), at(op.qkv), kv.k, kv.v, c.step.field("positions"), c.step.field("slots"), at(op.invFreq), op.qNorm ? at(op.qNorm) : 0, op.kNorm ? at(op.kNorm) : 0, T, op.numHeads, op.numKvHeads, op.headDim, op.rotary.dim, ROPE_STYLE[op.rotary.style], fbits(op.eps), c.kvDtype);
      if (c.wasmAttention) p.emit(OP.ATTENTION, ...attentionArgs(c, at(op.out), at(op.q), op));
      return;
    }
    case "silu":
      p.emit(OP.ELEMENTWISE, ELEMENTWISE.silu, at(op.out), at(op.x), 0, rows(c, op.out) * cols(op.out));
      return;
    case "mul":
    case "add":
      p.emit(OP.ELEMENTWISE, ELEMENTWISE[op.op], at(op.out), at(op.a), at(op.b), rows(c, op.out) * cols(op.out));
      return;
    case "silu_mul":
      p.emit(OP.SILU_MUL, at(op.out), at(op.x), rows(c, op.out), cols(op.out));
      return;
    case "gather_rows":
      p.emit(OP.GATHER_ROWS, at(op.out), at(op.x), c.step.field("logitRows"), c.cap.R, cols(op.x));
      return;
    default:
      // collectives and embedding_part run on the calling thread (host-ops.ts); nothing is dropped silently
      throw new Error(`cpu backend: no kernel for op "${op.op}"`);
  }
}

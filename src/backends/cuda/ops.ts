/**
 * One graph op -> its kernel launches, for the step whose metadata is on the device.
 * Shapes come from the graph and the step's row counts; every launch goes to the
 * context's stream in graph order, so launching a whole step is also how a CUDA graph
 * of it is captured.
 */
import { colsOf, type Graph, type Op } from "../../graph/ir.js";
import { rowsFor } from "../../graph/passes/plan-memory.js";
import { launchAttention, type AttentionContext } from "./attention.js";
import type { DevPtr } from "./driver.js";
import { kvSuffix } from "./dtypes.js";
import { runHostOp, type HostOpContext } from "./host-collectives.js";
import { launchLinear, type LinearContext } from "./linear.js";
import type { DeviceWeight } from "./weights.js";

export interface OpContext extends LinearContext, AttentionContext, Omit<HostOpContext, "size"> {
  graph: Graph;
  T: number;
  R: number;
  /** Device address of an activation (arena) or weight. */
  at(name: string): DevPtr;
  weight(name: string): DeviceWeight;
  /** Whether an activation is stored as float32 (logits) rather than the activation type. */
  isF32(name: string): boolean;
  kvPtrs(layer: number): { k: DevPtr; v: DevPtr };
  /** RoPE inverse frequencies [rot/2] as float32, by tensor name. */
  smCount: number;
}

type Grid = [number, number, number];
const B128: Grid = [128, 1, 1];
const B256: Grid = [256, 1, 1];

/** Threads for a row kernel over `cols` values: ~8 values each, whole warps, 32..256. */
export function rowThreads(cols: number): Grid {
  return [Math.min(256, Math.max(32, Math.ceil(cols / 8 / 32) * 32)), 1, 1];
}

function strided(c: OpContext, n: number): Grid {
  return [Math.max(1, Math.min(Math.ceil(n / 256), c.smCount * 16)), 1, 1];
}

export function launchOp(op: Op, c: OpContext): void {
  const cols = (n: string) => colsOf(c.graph, n);
  const rows = (n: string) => {
    const d = c.graph.tensors.get(n)!;
    return d.kind === "activation" ? rowsFor(d.rows, { T: c.T, R: c.R }) : 1;
  };
  const meta = (f: keyof AttentionContext["layout"]["at"]) => c.meta + 4 * c.layout.at[f];
  const a = c.act;
  switch (op.op) {
    case "embedding": {
      const w = c.weight(op.table);
      return c.k.launch(`embedding_${a}`, [c.T, 1, 1], B128, [["ptr", c.at(op.out)], ["ptr", w.ptr], ["ptr", meta("tokenIds")], ["i32", c.T], ["i32", w.cols], ["i32", w.rows]]);
    }
    case "rmsnorm": {
      const n = rows(op.x) * cols(op.x);
      return c.k.launch(`rmsnorm_${a}`, [n / op.groupSize, 1, 1], rowThreads(op.groupSize), [["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["ptr", c.at(op.weight)], ["i32", n / op.groupSize], ["i32", op.groupSize], ["f32", op.eps]]);
    }
    case "add_rmsnorm": {
      const r = rows(op.a);
      return c.k.launch(`add_rmsnorm_${a}`, [r, 1, 1], rowThreads(cols(op.a)), [["ptr", c.at(op.out)], ["ptr", c.at(op.sum)], ["ptr", c.at(op.a)], ["ptr", c.at(op.b)], ["ptr", c.at(op.weight)], ["i32", r], ["i32", cols(op.a)], ["f32", op.eps]]);
    }
    case "matmul": {
      const bias = op.bias ? c.at(op.bias) : 0;
      launchLinear(c, c.at(op.out), c.isF32(op.out), c.at(op.x), c.weight(op.w), bias, rows(op.x));
      return;
    }
    case "slice_cols": {
      const r = rows(op.x),
        n = cols(op.out);
      const s = c.isF32(op.x) ? "f32" : a;
      return c.k.launch(`slice_cols_${s}`, strided(c, r * n), B256, [["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["i32", r], ["i32", cols(op.x)], ["i32", op.start], ["i32", n]]);
    }
    case "rope_inv_freq":
      // the frequencies were computed at bind into a float32 weight of the same name
      return c.k.launch("slice_cols_f32", [1, 1, 1], B256, [["ptr", c.at(op.out)], ["ptr", c.weight(op.out).ptr], ["i32", 1], ["i32", cols(op.out)], ["i32", 0], ["i32", cols(op.out)]]);
    case "rope":
      return c.k.launch(`rope_${a}`, [c.T, 1, 1], B128, [
        ["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["ptr", meta("positions")], ["ptr", c.at(op.invFreq)],
        ["i32", cols(op.x)], ["i32", op.headDim], ["i32", op.rotary.dim], ["i32", op.rotary.style === "interleaved" ? 1 : 0],
      ]);
    case "kv_write": {
      const kv = c.kvPtrs(op.layer);
      return c.k.launch(`kv_write_${kvSuffix(a, c.cache)}`, [c.T, 1, 1], B128, [["ptr", kv.k], ["ptr", kv.v], ["ptr", c.at(op.k)], ["ptr", c.at(op.v)], ["ptr", meta("slots")], ["i32", cols(op.k)], ["f32", c.kvScale]]);
    }
    case "attention": {
      const kv = c.kvPtrs(op.layer);
      return launchAttention(c, op, c.at(op.q), c.at(op.out), kv.k, kv.v);
    }
    case "attention_qkv": {
      const kv = c.kvPtrs(op.layer);
      c.k.launch(`qkv_rope_kv_${kvSuffix(a, c.cache)}`, [c.T, Math.ceil((op.numHeads + 2 * op.numKvHeads) / 4), 1], B128, [
        ["ptr", c.at(op.q)], ["ptr", kv.k], ["ptr", kv.v], ["ptr", c.at(op.qkv)], ["ptr", meta("positions")], ["ptr", meta("slots")], ["ptr", c.at(op.invFreq)],
        ["ptr", op.qNorm ? c.at(op.qNorm) : 0], ["ptr", op.kNorm ? c.at(op.kNorm) : 0],
        ["i32", op.numHeads], ["i32", op.numKvHeads], ["i32", op.headDim], ["i32", op.rotary.dim], ["i32", op.rotary.style === "interleaved" ? 1 : 0], ["f32", op.eps], ["f32", c.kvScale],
      ]);
      return launchAttention(c, op, c.at(op.q), c.at(op.out), kv.k, kv.v);
    }
    case "silu": {
      const n = rows(op.x) * cols(op.x);
      return c.k.launch(`silu_${a}`, strided(c, n), B256, [["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["i32", n]]);
    }
    case "silu_mul": {
      const r = rows(op.x),
        I = cols(op.out);
      // a 16-byte vector per thread
      return c.k.launch(`silu_mul_${a}`, strided(c, Math.ceil((r * I) / 8)), B256, [["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["i32", r], ["i32", I]]);
    }
    case "mul":
    case "add": {
      const n = rows(op.out) * cols(op.out);
      return c.k.launch(`${op.op}_${a}`, strided(c, n), B256, [["ptr", c.at(op.out)], ["ptr", c.at(op.a)], ["ptr", c.at(op.b)], ["i32", n]]);
    }
    case "embedding_part":
    case "all_reduce":
    case "all_gather":
    case "send":
    case "recv":
      return runHostOp(op, { ...c, size: (n) => ({ n: rows(n) * cols(n), cols: cols(n) }) });
    case "gather_rows": {
      const s = c.isF32(op.x) ? "f32" : a;
      return c.k.launch(`gather_rows_${s}`, [c.R, 1, 1], B128, [["ptr", c.at(op.out)], ["ptr", c.at(op.x)], ["ptr", meta("logitRows")], ["i32", c.R], ["i32", cols(op.x)]]);
    }
  }
}

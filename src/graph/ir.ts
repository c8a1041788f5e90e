/**
 * The graph IR: a list of typed ops over named tensors. Model files build graphs,
 * passes rewrite them, backends execute them. Nothing here knows a model or a kernel.
 *
 * Activations are 2-D [rows, cols]: rows is "T" (tokens in the step) or "R" (rows
 * whose logits are wanted); cols is static. Weights are constants with static shapes
 * ([out, in] for linear layers). The KV cache is state owned by the backend, addressed
 * by layer index, read and written only by the attention ops.
 */
import type { RopeConfig } from "../checkpoint/config.js";

export type Rows = "T" | "R";

export interface ActivationDecl {
  kind: "activation";
  rows: Rows;
  cols: number;
}

export interface WeightDecl {
  kind: "weight";
  shape: number[];
}

export type TensorDecl = ActivationDecl | WeightDecl;

/** Geometry an attention op needs; shared by the plain and fused forms. */
export interface AttentionGeometry {
  layer: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Multiplies q·k before the softmax (1/sqrt(headDim) for Llama). */
  scale: number;
  /** Attend only to the last `slidingWindow` positions (itself included); null = all. */
  slidingWindow: number | null;
}

export type Op =
  /** out[t] = table[tokenIds[t]] */
  | { op: "embedding"; out: string; table: string }
  /** RMSNorm over each group of `groupSize` columns (groupSize = cols normalizes whole rows). */
  | { op: "rmsnorm"; out: string; x: string; weight: string; eps: number; groupSize: number }
  /** out[T, N] = x[T, K] @ w[N, K]^T (+ bias[N]) */
  | { op: "matmul"; out: string; x: string; w: string; bias?: string }
  /** Rotary embedding of each head of x (cols = heads*headDim) at the step's positions. */
  | { op: "rope"; out: string; x: string; headDim: number; rope: RopeConfig }
  /** Stores k and v of each token at its slot in the layer's paged KV cache. */
  | { op: "kv_write"; k: string; v: string; layer: number }
  /** Causal attention of each query token over its sequence's cached keys and values. */
  | ({ op: "attention"; out: string; q: string } & AttentionGeometry)
  /** out = silu(gate) * up */
  | { op: "silu_mul"; out: string; gate: string; up: string }
  /** out = a + b */
  | { op: "add"; out: string; a: string; b: string }
  /** out[r] = x[logitRows[r]] */
  | { op: "gather_rows"; out: string; x: string };

export type OpKind = Op["op"];

export interface Graph {
  tensors: Map<string, TensorDecl>;
  ops: Op[];
  /** Activations the caller reads after the step (e.g. "logits"). */
  outputs: string[];
}

/** Names an op reads. */
export function opInputs(op: Op): string[] {
  switch (op.op) {
    case "embedding":
      return [op.table];
    case "rmsnorm":
      return [op.x, op.weight];
    case "matmul":
      return op.bias ? [op.x, op.w, op.bias] : [op.x, op.w];
    case "rope":
      return [op.x];
    case "kv_write":
      return [op.k, op.v];
    case "attention":
      return [op.q];
    case "silu_mul":
      return [op.gate, op.up];
    case "add":
      return [op.a, op.b];
    case "gather_rows":
      return [op.x];
  }
}

/** Names an op writes. */
export function opOutputs(op: Op): string[] {
  return op.op === "kv_write" ? [] : [op.out];
}

/**
 * Ops with effects beyond their outputs. An attention op reads state a kv_write left,
 * so the order kv_write -> attention of a layer must be kept by every pass.
 */
export function hasSideEffects(op: Op): boolean {
  return op.op === "kv_write";
}

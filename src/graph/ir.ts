/**
 * The graph IR: a list of typed ops over named tensors. Model files build graphs,
 * passes rewrite them, backends execute them. Nothing here knows a model or a kernel.
 *
 * Activations are 2-D [rows, cols]: rows is "T" (tokens in the step), "R" (rows whose
 * logits are wanted) or "1" (one row, the same every step: outputs of ops with no
 * dynamic input); cols is static. Weights are constants with static shapes ([out, in]
 * for linear layers). The KV cache is state owned by the backend, addressed by layer
 * index, written by kv_write / attention_qkv and read by the attention ops.
 *
 * Model files emit the plain ops; the fused ones (marked "fused") are produced only by
 * the passes in ./passes.
 */
import type { RopeConfig } from "../checkpoint/config.js";

export type Rows = "T" | "R" | "1";

export interface ActivationDecl {
  kind: "activation";
  rows: Rows;
  cols: number;
}

export interface WeightDecl {
  kind: "weight";
  shape: number[];
  /** How the builder makes this weight; absent = the checkpoint tensor of the same name. */
  source?: WeightSource;
  /**
   * The packed format (e.g. "q4_k", "q6_k") the build keeps this checkpoint tensor in, where
   * it keeps one: fusion never stacks weights of different packed formats (one would have
   * to be widened to f32 for them to share a matrix).
   */
  stored?: string;
}

export type TensorDecl = ActivationDecl | WeightDecl;

/**
 * A weight recipe: what passes ask the builder to do to checkpoint tensors (the weight
 * transforms a fusion implies), so that no pass and no builder code is model-specific.
 */
export type WeightSource =
  | { kind: "checkpoint"; name: string }
  /** The parts concatenated along their first axis (rows of [out, in] matrices, or vectors). */
  | { kind: "concat"; parts: WeightSource[] }
  /** Output `out` of a graph with only weight inputs, evaluated once at build time. */
  | { kind: "fold"; graph: Graph; out: string }
  /**
   * Rows (axis 0) or columns (axis 1) [start, start + count) of a 2-D part of `shape`, or
   * elements of a vector: one rank's shard of a weight (passes/shard.ts).
   */
  | { kind: "slice"; of: WeightSource; shape: number[]; axis: 0 | 1; start: number; count: number };

/** Rotary pairing within a head: which dims rotate together, and how many rotate. */
export interface RotaryDims {
  style: RopeConfig["style"];
  /** Rotated dimensions per head (= headDim unless partial rotary). */
  dim: number;
}

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
  /** out[rows, n] = x[rows, start : start + n] (n = out's cols) */
  | { op: "slice_cols"; out: string; x: string; start: number }
  /** out[1, rope.dim / 2]: the inverse frequency of each rotated pair. No dynamic input. */
  | { op: "rope_inv_freq"; out: string; rope: RopeConfig }
  /** Rotary embedding of each head of x (cols = heads*headDim) at the step's positions. */
  | { op: "rope"; out: string; x: string; invFreq: string; headDim: number; rotary: RotaryDims }
  /** Stores k and v of each token at its slot in the layer's paged KV cache. */
  | { op: "kv_write"; k: string; v: string; layer: number }
  /** Causal attention of each query token over its sequence's cached keys and values. */
  | ({ op: "attention"; out: string; q: string } & AttentionGeometry)
  /**
   * Fused: from packed rows qkv [T, q|k|v], applies the optional per-head RMSNorm to q
   * and k (Qwen3) and RoPE to both, writes k and v to the layer's cache, then attends.
   * q [T, heads*headDim] receives the rotated queries (a scratch output).
   */
  | ({
      op: "attention_qkv";
      out: string;
      q: string;
      qkv: string;
      invFreq: string;
      rotary: RotaryDims;
      qNorm?: string;
      kNorm?: string;
      eps: number;
    } & AttentionGeometry)
  /** out = silu(x) = x * sigmoid(x) */
  | { op: "silu"; out: string; x: string }
  /** out = a * b, elementwise */
  | { op: "mul"; out: string; a: string; b: string }
  /** Fused: out[rows, I] = silu(x[:, :I]) * x[:, I:]; x holds gate|up [rows, 2I]. */
  | { op: "silu_mul"; out: string; x: string }
  /** out = a + b */
  | { op: "add"; out: string; a: string; b: string }
  /** Fused: sum = a + b; out = rmsnorm(sum) over whole rows. */
  | { op: "add_rmsnorm"; out: string; sum: string; a: string; b: string; weight: string; eps: number }
  /** out[r] = x[logitRows[r]] */
  | { op: "gather_rows"; out: string; x: string }
  // Collectives (parallel/): every rank of the group runs the same collective in the same
  // order; the backend performs it through the communicator it was given.
  /** Vocabulary-parallel embedding: out[t] = table[tokenIds[t] - vocabStart], zeros for ids outside this shard. */
  | { op: "embedding_part"; out: string; table: string; vocabStart: number }
  /** out = the sum of x over the tensor-parallel group (identical bits on every rank). */
  | { op: "all_reduce"; out: string; x: string }
  /** out[rows, sum(parts)] = the x [rows, parts[r]] of each rank r of the tensor-parallel group, side by side. */
  | { op: "all_gather"; out: string; x: string; parts: number[] }
  /** Hands x to rank `peer` (the next pipeline stage). */
  | { op: "send"; x: string; peer: number }
  /** out = what rank `peer` (the previous pipeline stage) sent. */
  | { op: "recv"; out: string; peer: number };

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
    case "embedding_part":
      return [op.table];
    case "rmsnorm":
      return [op.x, op.weight];
    case "matmul":
      return op.bias ? [op.x, op.w, op.bias] : [op.x, op.w];
    case "slice_cols":
    case "silu":
    case "silu_mul":
    case "gather_rows":
    case "all_reduce":
    case "all_gather":
    case "send":
      return [op.x];
    case "rope_inv_freq":
    case "recv":
      return [];
    case "rope":
      return [op.x, op.invFreq];
    case "kv_write":
      return [op.k, op.v];
    case "attention":
      return [op.q];
    case "attention_qkv":
      return [op.qkv, op.invFreq, ...(op.qNorm ? [op.qNorm] : []), ...(op.kNorm ? [op.kNorm] : [])];
    case "mul":
    case "add":
      return [op.a, op.b];
    case "add_rmsnorm":
      return [op.a, op.b, op.weight];
  }
}

/** Names an op writes (the first is the one it is named by). */
export function opOutputs(op: Op): string[] {
  switch (op.op) {
    case "kv_write":
    case "send":
      return [];
    case "attention_qkv":
      return [op.out, op.q];
    case "add_rmsnorm":
      return [op.out, op.sum];
    default:
      return [op.out];
  }
}

/**
 * Ops with effects beyond their outputs (they write the KV cache). An attention op reads
 * state a kv_write left, so every pass keeps the order of a layer's cache writes and reads.
 * Collectives count too: every rank must run each one, so no pass may drop or fold one.
 */
export function hasSideEffects(op: Op): boolean {
  return op.op === "kv_write" || op.op === "attention_qkv" || isCollective(op);
}

/** Ops that talk to other ranks. */
export function isCollective(op: Op): op is Extract<Op, { op: "all_reduce" | "all_gather" | "send" | "recv" }> {
  return op.op === "all_reduce" || op.op === "all_gather" || op.op === "send" || op.op === "recv";
}

/** Ops that read the StepBatch (token ids, positions, block tables, logit rows) or the cache. */
export function readsStep(op: Op): boolean {
  switch (op.op) {
    case "embedding":
    case "embedding_part":
    case "recv":
    case "rope":
    case "kv_write":
    case "attention":
    case "attention_qkv":
    case "gather_rows":
      return true;
    default:
      return false;
  }
}

/** Columns of a tensor: an activation's cols, a weight's innermost dimension. */
export function colsOf(g: Graph, name: string): number {
  const d = g.tensors.get(name);
  if (!d) throw new Error(`graph: unknown tensor "${name}"`);
  return d.kind === "activation" ? d.cols : d.shape[d.shape.length - 1];
}

/** The decoder layer an op belongs to, from its layer field or its first output's "l<N>." prefix. */
export function opLayer(op: Op): number | null {
  if ("layer" in op) return op.layer;
  const m = /^l(\d+)\./.exec(opOutputs(op)[0] ?? "");
  return m ? Number(m[1]) : null;
}

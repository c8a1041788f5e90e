/**
 * What a backend offers the engine: bind a graph and its weights, own the paged KV
 * cache, and run one StepBatch at a time. A backend knows nothing of requests.
 */
import { OptionError } from "../errors.js";
import type { Graph } from "../graph/ir.js";
import type { MemoryPlan } from "../graph/passes/plan-memory.js";
import type { StepBatch } from "../graph/step-batch.js";
import type { PackedDType, PackedMatrix } from "../quant/packed.js";

/** Float32 weights by tensor name, row-major in their declared shapes. */
export type WeightMap = Map<string, Float32Array>;

/** Weights kept packed (int8 / int4, src/quant/packed.ts) by tensor name: absent from the WeightMap. */
export type PackedWeightMap = Map<string, PackedMatrix>;

/** A 16-bit matrix as stored (an engine file's bf16 / fp16 bits), handed over without widening to f32. */
export interface HalfWeight {
  dtype: "bf16" | "f16";
  /** [rows, cols] row-major */
  bits: Uint16Array;
}
/** 16-bit matrices by tensor name, for a backend that takes them as stored: absent from the WeightMap. */
export type HalfWeightMap = Map<string, HalfWeight>;

/**
 * Storage type of the KV cache; attention always computes in float32. int8 is symmetric
 * with one float32 scale per (slot, KV head): see reference/kv-plane.ts for why per slot.
 * fp8 (e4m3) is the cuda target's, on Ada and Hopper GPUs; other backends refuse it.
 */
export type KvDType = "f32" | "f16" | "bf16" | "int8" | "fp8";

export const KV_DTYPES: readonly KvDType[] = ["f32", "f16", "bf16", "int8", "fp8"];

/** Bytes per stored K or V value (int8: its scales come on top, see kvRowBytes). */
export const KV_DTYPE_BYTES: Record<KvDType, number> = { f32: 4, f16: 2, bf16: 2, int8: 1, fp8: 1 };

/** For backends without an fp8 KV cache: the typed refusal. */
export function refuseFp8Kv(kv: { dtype?: KvDType }, backend: string): void {
  if (kv.dtype === "fp8") throw new OptionError("--kv-dtype", `an fp8 KV cache runs on the cuda target only; the ${backend} backend has none`, "use int8 (a scale per head and slot), bf16 or f16 here, or --target cuda");
}

/** Bytes one slot (token) of one K or V plane of one layer takes, int8 scales included. */
export function kvRowBytes(dtype: KvDType, numKvHeads: number, headDim: number): number {
  return numKvHeads * headDim * KV_DTYPE_BYTES[dtype] + (dtype === "int8" ? 4 * numKvHeads : 0);
}

export interface KvCacheShape {
  numLayers: number;
  numBlocks: number;
  /** Tokens per block. */
  blockSize: number;
  numKvHeads: number;
  headDim: number;
  /** Default f32. */
  dtype?: KvDType;
}

export interface BoundGraph {
  /** Runs one step; returns each graph output (a copy the caller owns), e.g. logits [R, vocab]. */
  forward(step: StepBatch): Map<string, Float32Array>;
  readonly kv: KvCacheShape;
  /** Bytes the KV cache holds. */
  readonly kvBytes: number;
  /** Copies every slot of block `src` into block `dst` in every layer (copy-on-write). */
  copyBlock(src: number, dst: number): void;
  /**
   * Optional: runs the step and returns, per logit row, the ids of its k largest logits
   * (k = 1: greedy; id -1 where a row holds NaN or only -Infinity), chosen where the
   * logits are, so R*k numbers cross to the host instead of R*vocab.
   */
  forwardTopK?(step: StepBatch, k: number): { ids: Int32Array; values: Float32Array };
  /** Optional: frees what the binding holds (threads, device memory); it cannot run afterwards. Idempotent. */
  close?(): void;
  /** Optional: a permanent failure (a rank died): every later step throws it. Null while healthy. */
  failure?(): Error | null;
}

export interface Backend {
  readonly name: string;
  /**
   * Binds a graph to weights and a fresh KV cache. With a memory plan, activations live
   * in one arena at the plan's offsets and steps may not exceed its capacity; without
   * one, each activation gets its own buffer every step (for tests and tools).
   */
  bind(graph: Graph, weights: WeightMap, kv: KvCacheShape, plan?: MemoryPlan, packed?: PackedWeightMap, halves?: HalfWeightMap): BoundGraph;
  /** Packed weight formats this backend's matmul reads as they are; loaders dequantize the others. */
  readonly packedDTypes?: readonly PackedDType[];
  /**
   * 16-bit matrix types this backend takes as stored (`halves` of bind): a loader hands such
   * matrices over as bits instead of widening them to f32 for the backend to narrow again
   * (which, for a 1.1B model, touched 4.4 GB of fresh memory and took seconds).
   */
  readonly halfDTypes?: readonly HalfWeight["dtype"][];
}

/**
 * How many KV blocks an engine gets: an explicit byte budget, or enough for maxSeqs
 * full-length sequences capped at a fraction of the machine's free memory.
 */
import { freemem } from "node:os";
import { kvRowBytes, type KvDType } from "../backends/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import { OptionError } from "../errors.js";

export interface KvBudgetOptions {
  /** Bytes for the KV cache (overrides the default sizing). */
  kvCacheBytes?: number;
  /** Share of free memory the default sizing may take (default 0.4). */
  kvCacheFraction?: number;
  blockSize: number;
  maxSeqs: number;
  maxSeqLen: number;
  /** KV storage type (default f32). */
  kvDtype?: KvDType;
}

/** Bytes one block of K and V takes across all layers (int8: its per-slot, per-head scales included). */
export function kvBytesPerBlock(c: ModelConfig, blockSize: number, dtype: KvDType = "f32"): number {
  return 2 * c.numLayers * blockSize * kvRowBytes(dtype, c.numKvHeads, c.headDim);
}

export function kvBlocksFor(c: ModelConfig, o: KvBudgetOptions): number {
  const perBlock = kvBytesPerBlock(c, o.blockSize, o.kvDtype);
  const oneSeq = Math.ceil(o.maxSeqLen / o.blockSize);
  if (o.kvCacheBytes !== undefined) {
    const n = Math.floor(o.kvCacheBytes / perBlock);
    if (n < 1) {
      throw new OptionError("--kv-cache-bytes", `${o.kvCacheBytes} bytes hold no KV block; one block of ${o.blockSize} tokens takes ${perBlock} bytes`, `give at least ${perBlock * oneSeq} bytes for one sequence of ${o.maxSeqLen} tokens`);
    }
    return n;
  }
  const wanted = o.maxSeqs * oneSeq;
  const affordable = Math.floor(((o.kvCacheFraction ?? 0.4) * freemem()) / perBlock);
  return Math.max(Math.min(wanted, affordable), Math.min(wanted, oneSeq));
}

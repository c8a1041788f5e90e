/**
 * Device memory of a bound engine, planned before anything is allocated: weights in
 * their device formats, the activation arena, step metadata and scratch, and the paged
 * KV cache (one spare "sink" block for padded CUDA-graph rows). Either the KV cache gets
 * the blocks the engine asked for, or a share of what is free ("fill"), and a plan that
 * does not fit says by how much and what to lower.
 */
import { OptionError } from "../../errors.js";
import { formatBytes } from "../../engine/report.js";

export interface DeviceMemoryInput {
  freeBytes: number;
  weightBytes: number;
  arenaBytes: number;
  /** Step metadata, attention partials, cuBLASLt workspace, conversion scratch. */
  scratchBytes: number;
  /** K and V of one block across all layers. */
  kvBytesPerBlock: number;
  /** Blocks the engine asked for. */
  requestedBlocks: number;
  /** "requested": exactly those; "fill": as many as fit in `utilization` of free memory. */
  kvBlocks: "requested" | "fill";
  /** Share of free memory llmrt may take (default 0.9, as vLLM's gpu_memory_utilization). */
  utilization?: number;
}

export interface DeviceMemoryPlan {
  numBlocks: number;
  kvBytes: number;
  totalBytes: number;
  summary: string;
}

export function planDeviceMemory(i: DeviceMemoryInput): DeviceMemoryPlan {
  const budget = Math.floor(i.freeBytes * (i.utilization ?? 0.9));
  const fixed = i.weightBytes + i.arenaBytes + i.scratchBytes;
  const forKv = budget - fixed - i.kvBytesPerBlock; // the sink block
  const fits = Math.floor(forKv / i.kvBytesPerBlock);
  const numBlocks = i.kvBlocks === "fill" ? fits : i.requestedBlocks;
  const kvBytes = (numBlocks + 1) * i.kvBytesPerBlock;
  const totalBytes = fixed + kvBytes;
  const summary = `weights ${formatBytes(i.weightBytes)}, activations ${formatBytes(i.arenaBytes)}, scratch ${formatBytes(i.scratchBytes)}, KV ${numBlocks} blocks ${formatBytes(kvBytes)} (of ${formatBytes(i.freeBytes)} free)`;
  if (numBlocks < 1 || totalBytes > budget) {
    const short = totalBytes - budget;
    throw new OptionError(
      "GPU memory",
      `the engine needs ${formatBytes(Math.max(totalBytes, fixed + 2 * i.kvBytesPerBlock))} but ${formatBytes(budget)} of the GPU's ${formatBytes(i.freeBytes)} free may be used (${summary}; short by ${formatBytes(Math.max(short, 0))})`,
      "lower --max-seqs, --max-seq-len or --max-batch-tokens, use a smaller --kv-dtype, or quantize the weights",
    );
  }
  return { numBlocks, kvBytes, totalBytes, summary };
}

/**
 * CUDA graphs for decode steps. A graph replays a fixed sequence of launches with fixed
 * arguments, so it is captured per batch-size bucket: a decode step of n sequences runs
 * the graph of the smallest bucket >= n, padded with dummy sequences that write their K/V
 * into a spare "sink" block and whose logits are dropped. Buckets as vLLM's: 1, 2, 4, 8,
 * then every 8 up to the largest batch (at most 256 by default).
 *
 * A step qualifies when every sequence feeds exactly one token, each wants that token's
 * logits in order, and every block table fits the graph's fixed table stride.
 */
import type { StepBatch } from "../../graph/step-batch.js";

export interface BucketOptions {
  /** Most sequences a step can hold. */
  maxBatch: number;
  /** Largest bucket captured (default 256); bigger decode steps run launch by launch. */
  maxBucket?: number;
}

export function planBuckets(o: BucketOptions): number[] {
  const top = Math.max(1, Math.min(o.maxBatch, o.maxBucket ?? 256));
  const out: number[] = [];
  for (const b of [1, 2, 4]) if (b < top) out.push(b);
  for (let b = 8; b < top; b += 8) out.push(b);
  out.push(top);
  return out;
}

/** The smallest bucket holding n sequences, or null if n exceeds them all. */
export function bucketFor(buckets: readonly number[], n: number): number | null {
  for (const b of buckets) if (b >= n) return b;
  return null;
}

/** The bucket a step can replay, or null when it must run launch by launch. */
export function graphBucket(step: StepBatch, buckets: readonly number[], stride: number): number | null {
  const S = step.seqStarts.length - 1;
  if (S === 0 || step.numTokens !== S || step.logitRows.length !== S) return null;
  for (let s = 0; s < S; s++) {
    if (step.seqStarts[s] !== s || step.logitRows[s] !== s) return null;
    if (step.blockTables[s].length > stride) return null;
  }
  return bucketFor(buckets, S);
}

/**
 * The step padded to `bucket` sequences: each pad sequence has token 0 at position 0,
 * writes slot 0 of `sinkBlock` and attends to it alone; its logits row is computed and
 * ignored. Real rows keep their indices.
 */
export function padDecodeStep(step: StepBatch, bucket: number, sinkBlock: number, blockSize: number): StepBatch {
  const S = step.numTokens;
  if (bucket < S) throw new RangeError(`bucket ${bucket} < ${S} sequences`);
  const n = bucket;
  const pad = (src: Int32Array, fill: (i: number) => number): Int32Array => {
    const out = new Int32Array(n);
    out.set(src);
    for (let i = S; i < n; i++) out[i] = fill(i);
    return out;
  };
  const seqStarts = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) seqStarts[i] = i;
  return {
    numTokens: n,
    tokenIds: pad(step.tokenIds, () => 0),
    positions: pad(step.positions, () => 0),
    seqStarts,
    contextLens: pad(step.contextLens, () => 1),
    blockTables: [...step.blockTables, ...Array.from({ length: n - S }, () => Int32Array.of(sinkBlock))],
    slotMapping: pad(step.slotMapping, () => sinkBlock * blockSize),
    logitRows: pad(step.logitRows, (i) => i),
  };
}

/**
 * Micro-batches for pipeline parallelism: one step's tokens cut into `m` contiguous
 * pieces of about equal size, so that stage s works on piece k while stage s+1 works on
 * piece k-1 (the bubble shrinks from (pp-1)/pp of the step to (pp-1)/(m+pp-1)). A cut may
 * fall inside a sequence: its later piece attends to the K/V the earlier piece wrote on
 * the same stage, one micro-batch before. Every rank computes the same cut.
 */
import type { StepBatch } from "../graph/step-batch.js";

export interface MicroBatch {
  step: StepBatch;
  /** For each of its logit rows, the index of that row in the whole step's logits. */
  rows: Int32Array;
}

/**
 * How many pieces to cut a step of `tokens` into: at most `most`, each of at least
 * `minTokens`. A piece below a backend's efficient size costs a stage nearly what the
 * whole step would (a pass over its weights: decode on a GPU; the cpu kernels' row tiles),
 * so cutting a small step adds work instead of overlapping it (bench/RESULTS.md, issue
 * 10: at --pp 2 on the cpu target, cutting 16 decode rows in two made every step slower).
 */
export function microBatchCount(tokens: number, most: number, minTokens: number): number {
  return Math.max(1, Math.min(most, Math.floor(tokens / Math.max(1, minTokens))));
}

export function splitStep(step: StepBatch, m: number): MicroBatch[] {
  const T = step.numTokens;
  const all = { step, rows: Int32Array.from(step.logitRows, (_, i) => i) };
  if (m <= 1 || T <= 1) return [all];
  const chunk = Math.ceil(T / m);
  const out: MicroBatch[] = [];
  for (let a = 0; a < T; a += chunk) out.push(piece(step, a, Math.min(T, a + chunk)));
  return out;
}

/** Tokens [a, b) of the step as a step of its own. */
function piece(step: StepBatch, a: number, b: number): MicroBatch {
  const seqStarts = [0];
  const contextLens: number[] = [];
  const blockTables: Int32Array[] = [];
  for (let s = 0; s + 1 < step.seqStarts.length; s++) {
    const lo = Math.max(a, step.seqStarts[s]);
    const hi = Math.min(b, step.seqStarts[s + 1]);
    if (lo >= hi) continue;
    seqStarts.push(hi - a);
    contextLens.push(step.contextLens[s] - (step.seqStarts[s + 1] - hi)); // its later tokens are not in the cache yet
    blockTables.push(step.blockTables[s]);
  }
  const logitRows: number[] = [];
  const rows: number[] = [];
  step.logitRows.forEach((t, i) => {
    if (t >= a && t < b) {
      logitRows.push(t - a);
      rows.push(i);
    }
  });
  return {
    step: {
      numTokens: b - a,
      tokenIds: step.tokenIds.subarray(a, b),
      positions: step.positions.subarray(a, b),
      seqStarts: Int32Array.from(seqStarts),
      contextLens: Int32Array.from(contextLens),
      blockTables,
      slotMapping: step.slotMapping.subarray(a, b),
      logitRows: Int32Array.from(logitRows),
    },
    rows: Int32Array.from(rows),
  };
}

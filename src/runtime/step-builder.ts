/**
 * Packs the scheduled slices of several sequences into one ragged StepBatch: no
 * padding, positions and KV slots computed from each sequence's block table.
 */
import type { StepBatch } from "../graph/step-batch.js";
import type { Sequence } from "./sequence.js";

export interface ScheduledSlice {
  seq: Sequence;
  /** Tokens of this sequence fed in this step, starting at seq.numComputed. */
  numNew: number;
  /** Whether the last fed token's logits are wanted (false for a non-final prefill chunk). */
  wantLogits: boolean;
  /** Also want the logits of every fed prompt token that predicts a later prompt token (prompt logprobs). */
  promptLogits?: boolean;
  /** How many of the numNew tokens are speculative (the head of seq.draft); each wants its logits too. */
  numDraft?: number;
}

/**
 * Logit rows a slice contributes, in order: prompt-predicting rows, then the sampling
 * rows (the last real token's, then one per draft token).
 */
export function sliceLogitRows(s: ScheduledSlice): { promptRows: number; sampleRows: number } {
  const end = s.seq.numComputed + s.numNew;
  const promptRows = s.promptLogits ? Math.max(0, Math.min(end, s.seq.promptLen - 1) - s.seq.numComputed) : 0;
  return { promptRows, sampleRows: s.wantLogits ? 1 + (s.numDraft ?? 0) : 0 };
}

export function buildStep(slices: readonly ScheduledSlice[], blockSize: number): StepBatch {
  const T = slices.reduce((n, s) => n + s.numNew, 0);
  const tokenIds = new Int32Array(T);
  const positions = new Int32Array(T);
  const slotMapping = new Int32Array(T);
  const seqStarts = new Int32Array(slices.length + 1);
  const contextLens = new Int32Array(slices.length);
  const blockTables: Int32Array[] = [];
  const logitRows: number[] = [];
  let t = 0;
  slices.forEach((slice, s) => {
    const { seq, numNew } = slice;
    seqStarts[s] = t;
    const { promptRows, sampleRows } = sliceLogitRows(slice);
    for (let r = 0; r < promptRows; r++) logitRows.push(t + r);
    const end = seq.numComputed + numNew;
    if (Math.ceil(end / blockSize) > seq.blockTable.length) {
      throw new Error(`sequence ${seq.id}: ${end} tokens need more than its ${seq.blockTable.length} KV blocks`);
    }
    const real = seq.tokens.length;
    for (let p = seq.numComputed; p < end; p++, t++) {
      tokenIds[t] = p < real ? seq.tokens[p] : seq.draft[p - real];
      positions[t] = p;
      slotMapping[t] = seq.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
    }
    contextLens[s] = end;
    blockTables.push(Int32Array.from(seq.blockTable));
    for (let r = sampleRows; r > 0; r--) logitRows.push(t - r);
  });
  seqStarts[slices.length] = T;
  return { numTokens: T, tokenIds, positions, seqStarts, contextLens, blockTables, slotMapping, logitRows: Int32Array.from(logitRows) };
}

/**
 * One forward pass over a ragged, packed batch: the new tokens of every scheduled
 * sequence concatenated (prefill chunks and decode tokens mixed), no padding.
 *
 * Sequence s owns tokens [seqStarts[s], seqStarts[s+1]) of the step. Its KV cache lives
 * in the blocks blockTables[s]; after this step it holds contextLens[s] tokens (those
 * computed before plus this step's). Token t writes its K/V to the flat cache slot
 * slotMapping[t] = block * blockSize + offsetInBlock.
 */
export interface StepBatch {
  /** T: tokens in this step. */
  numTokens: number;
  /** [T] token ids. */
  tokenIds: Int32Array;
  /** [T] absolute position of each token in its sequence. */
  positions: Int32Array;
  /** [S+1] offsets of each sequence's tokens; seqStarts[S] = T. */
  seqStarts: Int32Array;
  /** [S] tokens in the sequence's KV cache once this step has run. */
  contextLens: Int32Array;
  /** S block tables: the cache blocks of each sequence, in order. */
  blockTables: Int32Array[];
  /** [T] flat KV slot each token writes. */
  slotMapping: Int32Array;
  /** [R] step rows whose logits are wanted (usually the last token of each sequence). */
  logitRows: Int32Array;
}

export function numSeqs(step: StepBatch): number {
  return step.seqStarts.length - 1;
}

/** Which sequence each token row belongs to: [T]. */
export function tokenSeqIndex(step: StepBatch): Int32Array {
  const out = new Int32Array(step.numTokens);
  for (let s = 0; s < numSeqs(step); s++) out.fill(s, step.seqStarts[s], step.seqStarts[s + 1]);
  return out;
}

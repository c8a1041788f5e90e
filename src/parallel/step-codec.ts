/**
 * A StepBatch (plus the KV block copies queued since the last step) as Int32 words in
 * shared memory, so that every rank reads the step the main thread scheduled:
 *   [T, S, R, copies, blocks | tokenIds T | positions T | slotMapping T | seqStarts S+1 |
 *    contextLens S | tableLens S | logitRows R | tables (blocks) | copy pairs 2*copies]
 */
import type { StepBatch } from "../graph/step-batch.js";

const HEADER = 5;

/** Words a step of these sizes needs. */
export function stepWords(T: number, S: number, R: number, blocks: number, copies: number): number {
  return HEADER + 3 * T + (S + 1) + 2 * S + R + blocks + 2 * copies;
}

/** Writes the step into `w`; throws when it does not fit. */
export function encodeStep(w: Int32Array, step: StepBatch, copies: readonly [number, number][]): void {
  const T = step.numTokens;
  const S = step.seqStarts.length - 1;
  const R = step.logitRows.length;
  const blocks = step.blockTables.reduce((n, t) => n + t.length, 0);
  const need = stepWords(T, S, R, blocks, copies.length);
  if (need > w.length) throw new RangeError(`parallel: a step of ${T} tokens, ${S} sequences and ${blocks} blocks needs ${need} words; the step area holds ${w.length}`);
  w.set([T, S, R, copies.length, blocks]);
  let at = HEADER;
  const put = (a: ArrayLike<number>) => {
    w.set(a, at);
    at += a.length;
  };
  put(step.tokenIds);
  put(step.positions);
  put(step.slotMapping);
  put(step.seqStarts);
  put(step.contextLens);
  put(step.blockTables.map((t) => t.length));
  put(step.logitRows);
  for (const t of step.blockTables) put(t);
  put(copies.flat());
}

/** Reads a step back (copies of the words: the area is rewritten by the next step). */
export function decodeStep(w: Int32Array): { step: StepBatch; copies: [number, number][] } {
  const [T, S, R, nCopies] = w;
  let at = HEADER;
  const take = (n: number) => {
    const a = w.slice(at, at + n);
    at += n;
    return a;
  };
  const tokenIds = take(T);
  const positions = take(T);
  const slotMapping = take(T);
  const seqStarts = take(S + 1);
  const contextLens = take(S);
  const tableLens = take(S);
  const logitRows = take(R);
  const blockTables = Array.from(tableLens, (n) => take(n));
  const flat = take(2 * nCopies);
  const copies = Array.from({ length: nCopies }, (_, i): [number, number] => [flat[2 * i], flat[2 * i + 1]]);
  return { step: { numTokens: T, tokenIds, positions, seqStarts, contextLens, blockTables, slotMapping, logitRows }, copies };
}

/**
 * A StepBatch as the kernels read it: int32 arrays packed into one buffer (one host-to-
 * device copy per step) at offsets that depend only on the step's sizes, so that a CUDA
 * graph captured for one decode bucket finds its inputs at the same addresses on every
 * replay.
 *
 *   tokenIds [T]  positions [T]  slots [T]  seqStarts [S+1]  tokenSeq [T]
 *   tables [S, stride]  logitRows [R]  decodeRows [nd]  tiles [2 * ntiles]
 *
 * The attention work is split between the decode kernel (one block row per query token)
 * and the tensor-core prefill kernel (tiles of 64 query rows of one sequence).
 */
import type { StepBatch } from "../../graph/step-batch.js";

export const PREFILL_TILE = 64;
const ALIGN = 16; // ints: 64-byte aligned fields

export interface AttentionSplit {
  /** Step rows the decode kernel attends for. */
  decodeRows: Int32Array;
  /** (sequence, first row) of each 64-row prefill tile. */
  tiles: Int32Array;
  /** Longest visible context of a decode row (sizes the split over KV). */
  maxDecodeContext: number;
}

/**
 * Which rows go to which kernel: sequences with one new token (decode) or all rows when
 * the prefill kernel cannot run (f32 activations, head sizes other than 64 and 128), and
 * 64-row tiles of the longer sequences otherwise.
 */
export function splitAttention(step: StepBatch, prefillKernel: boolean): AttentionSplit {
  const decode: number[] = [];
  const tiles: number[] = [];
  let maxCtx = 0;
  for (let s = 0; s + 1 < step.seqStarts.length; s++) {
    const a = step.seqStarts[s],
      b = step.seqStarts[s + 1];
    if (b - a > 1 && prefillKernel) {
      for (let t = a; t < b; t += PREFILL_TILE) tiles.push(s, t);
    } else {
      for (let t = a; t < b; t++) decode.push(t);
      if (b > a) maxCtx = Math.max(maxCtx, step.positions[b - 1] + 1);
    }
  }
  return { decodeRows: Int32Array.from(decode), tiles: Int32Array.from(tiles), maxDecodeContext: maxCtx };
}

/** Longest block table of the step. */
export function maxTableLength(step: StepBatch): number {
  return step.blockTables.reduce((m, t) => Math.max(m, t.length), 1);
}

export interface StepSizes {
  T: number;
  S: number;
  R: number;
  /** Block-table row length (>= every table of the step). */
  stride: number;
  decodeRows: number;
  tiles: number;
}

export type StepField = "tokenIds" | "positions" | "slots" | "seqStarts" | "tokenSeq" | "tables" | "logitRows" | "decodeRows" | "tiles";

export interface StepLayout {
  sizes: StepSizes;
  /** Offset of each field in int32 units. */
  at: Record<StepField, number>;
  /** Total int32s. */
  ints: number;
}

export function stepSizes(step: StepBatch, split: AttentionSplit, stride = maxTableLength(step)): StepSizes {
  return {
    T: step.numTokens,
    S: step.seqStarts.length - 1,
    R: step.logitRows.length,
    stride,
    decodeRows: split.decodeRows.length,
    tiles: split.tiles.length / 2,
  };
}

export function layoutStep(z: StepSizes): StepLayout {
  const lengths: [StepField, number][] = [
    ["tokenIds", z.T],
    ["positions", z.T],
    ["slots", z.T],
    ["seqStarts", z.S + 1],
    ["tokenSeq", z.T],
    ["tables", z.S * z.stride],
    ["logitRows", z.R],
    ["decodeRows", z.decodeRows],
    ["tiles", 2 * z.tiles],
  ];
  const at = {} as Record<StepField, number>;
  let n = 0;
  for (const [f, len] of lengths) {
    at[f] = n;
    n += Math.ceil(Math.max(1, len) / ALIGN) * ALIGN;
  }
  return { sizes: z, at, ints: n };
}

/** Writes the step's fields into `out` (at least layout.ints long). */
export function packStep(step: StepBatch, split: AttentionSplit, L: StepLayout, out: Int32Array): void {
  const { at, sizes } = L;
  out.set(step.tokenIds, at.tokenIds);
  out.set(step.positions, at.positions);
  out.set(step.slotMapping, at.slots);
  out.set(step.seqStarts, at.seqStarts);
  for (let s = 0; s < sizes.S; s++) {
    out.fill(s, at.tokenSeq + step.seqStarts[s], at.tokenSeq + step.seqStarts[s + 1]);
    const table = step.blockTables[s];
    if (table.length > sizes.stride) throw new RangeError(`sequence ${s}: block table of ${table.length} exceeds the stride ${sizes.stride}`);
    out.set(table, at.tables + s * sizes.stride);
    out.fill(0, at.tables + s * sizes.stride + table.length, at.tables + (s + 1) * sizes.stride);
  }
  out.set(step.logitRows, at.logitRows);
  out.set(split.decodeRows, at.decodeRows);
  out.set(split.tiles, at.tiles);
}

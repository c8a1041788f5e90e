// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Attention's per-thread scratch (attention.ts): the layout of a unit's rows (q pointers,
 * key bounds, running max and sum, scores, output accumulators, a widened key block) and
 * the inline accessors the dispatch, score and value kernels all read it through.
 */
import { gHd, gOut, gQ, gRowOff, SYNC_THREADS } from "./attention";

/** Most rows (token x query head) in a unit, and the f32 budget of O [rows, headDim] and of a widened key block [keys, headDim]. */
export const ROWS_MAX = 32;
export const BLOCK_FLOATS = 4096;
/** Most keys in a block (the stride of a row of scores). */
export const KB_MAX = 64;

// scratch layout (bytes); sizes for ROWS_MAX rows and KB_MAX keys: ~41 KiB in all (64 KiB at least is given)
export const SC_ROWQ: usize = 0; // [rows] q row pointer
export const SC_FIRST: usize = 128; // [rows] first visible key (window)
export const SC_END: usize = 256; // [rows] last visible key + 1 (causal)
export const SC_LO: usize = 384; // [rows] this block's visible keys [lo, hi), block-relative
export const SC_HI: usize = 512;
export const SC_M: usize = 640; // [rows] running max
export const SC_L: usize = 768; // [rows] running sum of exp
export const SC_KROW: usize = 896; // [KB_MAX] f32 row pointer of each key (value) of the block
export const SC_S: usize = 1152; // [rows, KB_MAX] scores, then probabilities
export const SC_O: usize = SC_S + <usize>(ROWS_MAX * KB_MAX * 4); // [rows, headDim] unnormalised output
export const SC_BUF: usize = SC_O + <usize>(BLOCK_FLOATS * 4); // [keys, headDim] the block widened to f32
export const SC_TOUCH: usize = SC_BUF + <usize>(BLOCK_FLOATS * 4); // [16 bytes] touchRows' result

@inline export function krow(sc: usize, jj: i32): usize {
  return <usize>load<i32>(sc + SC_KROW + (<usize>jj << 2)) + gRowOff;
}

@inline export function rowLo(sc: usize, r: i32): i32 {
  return load<i32>(sc + SC_LO + (<usize>r << 2));
}

@inline export function rowHi(sc: usize, r: i32): i32 {
  return load<i32>(sc + SC_HI + (<usize>r << 2));
}

@inline export function rowQ(sc: usize, r: i32): usize {
  return <usize>load<i32>(sc + SC_ROWQ + (<usize>r << 2));
}

/** Row r's scores row [KB_MAX] f32. */
@inline export function rowS(sc: usize, r: i32): usize {
  return sc + SC_S + (<usize>(r * KB_MAX) << 2);
}

/** Row r's output accumulator [headDim] f32. */
@inline export function rowO(sc: usize, r: i32): usize {
  return sc + SC_O + (<usize>(r * gHd) << 2);
}

/** out row of row r: where its q row is, in out. */
@inline export function outRow(sc: usize, r: i32): usize {
  return gOut + (<usize>load<i32>(sc + SC_ROWQ + (<usize>r << 2)) - gQ);
}

@inline export function partScratch(sync: usize, tid: i32): usize {
  return <usize>load<i32>(sync + (<usize>(SYNC_THREADS + tid) << 2));
}

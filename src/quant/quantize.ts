/**
 * float32 [rows, cols] -> packed formats (packed.ts), one group of a row at a time.
 * Scales are rounded to their storage type before the integers are chosen, so the
 * stored scale is the one the integers were fitted to.
 *
 * A group's grid (fitGroup) and the code of one value on it (codeOn) are exported: GPTQ
 * (gptq.ts) fits each group as its error compensation reaches it and stores the same codes.
 */
import { f16ToF32, f32ToF16 } from "../checkpoint/fp16.js";
import { isKQuant } from "../checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../checkpoint/ggml-kquants-write.js";
import { packedFromKQuant } from "./kquant.js";
import { groupsPerRow, isInt8Storage, rowBytes, type PackedDType, type PackedLayout, type PackedMatrix } from "./packed.js";

const fr = Math.fround;
const storeScale = (s: number, layout: PackedLayout) => (layout.scale === "f16" ? f16ToF32(f32ToF16(s)) : fr(s));
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The integer grid of one group: value = scale * (code - zero). */
export interface GroupGrid {
  scale: number;
  /** int4: the code of 0 (8 unless asymmetric); int8: 0. */
  zero: number;
  /** Codes allowed: int8 [-127, 127], int4 [0, 15]. */
  lo: number;
  hi: number;
}

/** The dtypes with a grid per group (int8 storage and int4; not the K-quants). */
export type GridDType = "int8" | "w8a8" | "int4";

/**
 * The grid of x[base + k0 .. base + k1) (a group of one row):
 *   int8: symmetric, scale = amax / 127;
 *   int4 symmetric (as GGUF Q4_0): the value of largest magnitude maps to -8, so all 16 levels are used;
 *   int4 asymmetric: [min, max] (with 0 inside) over 15 steps, zero = round(-min / scale).
 */
export function fitGroup(x: ArrayLike<number>, base: number, k0: number, k1: number, dtype: GridDType, layout: PackedLayout): GroupGrid {
  if (isInt8Storage(dtype)) {
    let amax = 0;
    for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(x[base + k]));
    return { scale: storeScale(amax / 127, layout), zero: 0, lo: -127, hi: 127 };
  }
  if (layout.asym) {
    let lo = 0;
    let hi = 0;
    for (let k = k0; k < k1; k++) (lo = Math.min(lo, x[base + k])), (hi = Math.max(hi, x[base + k]));
    const scale = storeScale((hi - lo) / 15, layout);
    return { scale, zero: scale ? clamp(Math.round(-lo / scale), 0, 15) : 8, lo: 0, hi: 15 };
  }
  return fitSymInt4(x, base, k0, k1, layout, 8);
}

/**
 * The symmetric int4 grid whose step puts the group's value of largest magnitude, with its
 * sign, at -`steps` (8: the code 0, all 16 levels used; above 8: it is clipped to -8, a finer
 * step for the rest; 7: the 15 levels of a +-7 grid). GPTQ (gptq.ts) picks among several.
 */
export function fitSymInt4(x: ArrayLike<number>, base: number, k0: number, k1: number, layout: PackedLayout, steps: number): GroupGrid {
  let amax = 0;
  let max = 0;
  for (let k = k0; k < k1; k++) {
    const v = x[base + k];
    if (Math.abs(v) > amax) (amax = Math.abs(v)), (max = v);
  }
  return { scale: storeScale(max / -steps, layout), zero: 8, lo: 0, hi: 15 };
}

/** The stored code of v on the grid (round to nearest, clamped; the zero code for a zero scale). */
export const codeOn = (v: number, g: GroupGrid): number => (g.scale ? clamp(Math.round(v / g.scale) + g.zero, g.lo, g.hi) : g.zero);

/** What a code dequantizes to (float32, as the packed reading gives it). */
export const valueOf = (code: number, g: GroupGrid): number => fr(g.scale * (code - g.zero));

function setNibble(q: Uint8Array, qBase: number, k: number, u: number): void {
  const i = qBase + (k >> 1);
  q[i] = k & 1 ? (q[i] & 0x0f) | (u << 4) : (q[i] & 0xf0) | u;
}

/** An empty packed matrix of `dtype` to fill with setCode / setGrid. */
export function emptyPacked(rows: number, cols: number, dtype: GridDType, layout: PackedLayout): PackedMatrix {
  const G = groupsPerRow(cols, layout.groupSize);
  return {
    dtype,
    layout,
    rows,
    cols,
    q: new Uint8Array(rows * rowBytes(dtype, cols)),
    scales: new Float32Array(rows * G), // [rows, G]
    zeros: dtype === "int4" && layout.asym ? new Uint8Array(rows * G) : null, // [rows, G]
  };
}

/** Stores the code of column k of row n. */
export function setCode(p: PackedMatrix, n: number, k: number, code: number): void {
  if (isInt8Storage(p.dtype)) p.q[n * p.cols + k] = code & 0xff;
  else setNibble(p.q, n * rowBytes("int4", p.cols), k, code);
}

/** Stores the grid of group g of row n. */
export function setGrid(p: PackedMatrix, n: number, g: number, grid: GroupGrid): void {
  const at = n * groupsPerRow(p.cols, p.layout.groupSize) + g;
  p.scales[at] = grid.scale;
  if (p.zeros) p.zeros[at] = grid.zero;
}

/** Round-to-nearest: each group's grid from its own values, each value to its nearest code. */
export function quantize(values: Float32Array, rows: number, cols: number, dtype: PackedDType, layout: PackedLayout): PackedMatrix {
  if (values.length !== rows * cols) throw new Error(`quantize: ${values.length} values for [${rows}, ${cols}]`);
  if (isKQuant(dtype)) return packedFromKQuant(quantizeKQuant(dtype, values), dtype, rows, cols); // the GGUF writer's blocks (cols % 256 == 0)
  if (!(layout.groupSize >= 1)) throw new Error(`quantize: group size ${layout.groupSize}`);
  const p = emptyPacked(rows, cols, dtype, layout);
  const G = groupsPerRow(cols, layout.groupSize);
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * layout.groupSize;
      const k1 = Math.min(cols, k0 + layout.groupSize); // ragged last group
      const grid = fitGroup(values, n * cols, k0, k1, dtype, layout);
      setGrid(p, n, g, grid);
      for (let k = k0; k < k1; k++) setCode(p, n, k, codeOn(values[n * cols + k], grid));
    }
  }
  return p;
}

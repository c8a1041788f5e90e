/**
 * One AWQ / GPTQ linear layer unpacked from its int32 words into plain integers, the
 * common form both readers produce:
 *
 *   w[n, k] = scale[g, n] * (q[n, k] - zero[g, n])   with g = group[k]
 *
 * From it: the float32 weight (always exact: an f16 scale times a small integer fits a
 * float32 mantissa), and, where the layout maps onto llmrt's packed formats without
 * changing a value, the PackedMatrix the engine keeps packed (src/quant/packed.ts).
 */
import type { PackedMatrix } from "../quant/packed.js";

export interface QuantLinear {
  /** Output features (a weight's rows, as in `[out, in]`). */
  rows: number;
  /** Input features. */
  cols: number;
  bits: number;
  /** Columns per group along the input dim (the config's group_size; = cols for -1). */
  groupSize: number;
  /** [rows, cols] integers in [0, 2^bits) */
  q: Uint8Array;
  /** [groups, rows] zero points, already in the convention of the format (GPTQ v1: stored + 1) */
  zeros: Uint16Array;
  /** [groups, rows] */
  scales: Float32Array;
  /** How the checkpoint stored the scales: f16 ones stay f16 in a packed engine. */
  scaleDType: "f16" | "f32";
  /** [cols] group of each input column (GPTQ's g_idx; floor(k / groupSize) when absent). */
  group: Int32Array;
}

/** The weight as float32 [rows, cols]. */
export function dequantizeLinear(l: QuantLinear): Float32Array {
  const { rows, cols } = l;
  const out = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) {
      const gn = l.group[k] * rows + n;
      out[n * cols + k] = l.scales[gn] * (l.q[n * cols + k] - l.zeros[gn]);
    }
  }
  return out;
}

/** True when column k is in group floor(k / groupSize), as the packed formats assume (no desc_act reordering). */
function contiguousGroups(l: QuantLinear): boolean {
  for (let k = 0; k < l.cols; k++) if (l.group[k] !== Math.floor(k / l.groupSize)) return false;
  return true;
}

/**
 * The same values as a PackedMatrix, or undefined when no packed format holds them
 * exactly: 2/3-bit, reordered groups, 4-bit zero points over 15 (GPTQ v1's "zero 0"
 * reads back as 16), 8-bit with zero points other than 128 or a value of -128.
 */
export function toPackedMatrix(l: QuantLinear): PackedMatrix | undefined {
  if ((l.bits !== 4 && l.bits !== 8) || !contiguousGroups(l)) return undefined;
  const { rows, cols, groupSize } = l;
  const G = Math.ceil(cols / groupSize);
  const scales = new Float32Array(rows * G); // [rows, G]: transposed from the checkpoint's [G, rows]
  for (let g = 0; g < G; g++) for (let n = 0; n < rows; n++) scales[n * G + g] = l.scales[g * rows + n];
  const layout = { groupSize, asym: l.bits === 4, scale: l.scaleDType };
  if (l.bits === 8) {
    if (l.zeros.some((z) => z !== 128) || l.q.some((u) => u === 0)) return undefined;
    const q = new Uint8Array(rows * cols); // [rows, cols] int8 = u - 128
    for (let i = 0; i < q.length; i++) q[i] = (l.q[i] - 128) & 0xff;
    return { dtype: "int8", layout, rows, cols, q, scales, zeros: null };
  }
  if (l.zeros.some((z) => z > 15)) return undefined;
  const zeros = new Uint8Array(rows * G); // [rows, G]
  for (let g = 0; g < G; g++) for (let n = 0; n < rows; n++) zeros[n * G + g] = l.zeros[g * rows + n];
  const half = Math.ceil(cols / 2);
  const q = new Uint8Array(rows * half); // [rows, ceil(cols / 2)]: column k in the low nibble when k is even
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) q[n * half + (k >> 1)] |= l.q[n * cols + k] << ((k & 1) * 4);
  }
  return { dtype: "int4", layout, rows, cols, q, scales, zeros };
}

/**
 * float32 [rows, cols] -> packed formats (packed.ts), one group of a row at a time.
 * Scales are rounded to their storage type before the integers are chosen, so the
 * stored scale is the one the integers were fitted to.
 */
import { f16ToF32, f32ToF16 } from "../checkpoint/fp16.js";
import { isKQuant } from "../checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../checkpoint/ggml-kquants-write.js";
import { packedFromKQuant } from "./kquant.js";
import { groupsPerRow, isInt8Storage, rowBytes, type PackedDType, type PackedLayout, type PackedMatrix } from "./packed.js";

const fr = Math.fround;
const storeScale = (s: number, layout: PackedLayout) => (layout.scale === "f16" ? f16ToF32(f32ToF16(s)) : fr(s));
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

export function quantize(values: Float32Array, rows: number, cols: number, dtype: PackedDType, layout: PackedLayout): PackedMatrix {
  if (values.length !== rows * cols) throw new Error(`quantize: ${values.length} values for [${rows}, ${cols}]`);
  if (isKQuant(dtype)) return packedFromKQuant(quantizeKQuant(dtype, values), dtype, rows, cols); // the GGUF writer's blocks (cols % 256 == 0)
  if (!(layout.groupSize >= 1)) throw new Error(`quantize: group size ${layout.groupSize}`);
  const G = groupsPerRow(cols, layout.groupSize);
  const q = new Uint8Array(rows * rowBytes(dtype, cols));
  const scales = new Float32Array(rows * G); // [rows, G]
  const zeros = dtype === "int4" && layout.asym ? new Uint8Array(rows * G) : null; // [rows, G]
  for (let n = 0; n < rows; n++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * layout.groupSize;
      const k1 = Math.min(cols, k0 + layout.groupSize); // ragged last group
      const at = n * G + g;
      if (isInt8Storage(dtype)) scales[at] = int8Group(values, n * cols, k0, k1, q, n * cols, layout);
      else if (zeros) [scales[at], zeros[at]] = int4AsymGroup(values, n * cols, k0, k1, q, n * rowBytes("int4", cols), layout);
      else scales[at] = int4SymGroup(values, n * cols, k0, k1, q, n * rowBytes("int4", cols), layout);
    }
  }
  return { dtype, layout, rows, cols, q, scales, zeros };
}

/** Symmetric int8: scale = amax / 127, q = round(x / scale). */
function int8Group(x: Float32Array, xBase: number, k0: number, k1: number, q: Uint8Array, qBase: number, layout: PackedLayout): number {
  let amax = 0;
  for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(x[xBase + k]));
  const scale = storeScale(amax / 127, layout);
  for (let k = k0; k < k1; k++) q[qBase + k] = scale ? clamp(Math.round(x[xBase + k] / scale), -127, 127) & 0xff : 0;
  return scale;
}

function setNibble(q: Uint8Array, qBase: number, k: number, u: number): void {
  const i = qBase + (k >> 1);
  q[i] = k & 1 ? (q[i] & 0x0f) | (u << 4) : (q[i] & 0xf0) | u;
}

/**
 * Symmetric int4 (as GGUF Q4_0): the value of largest magnitude maps to -8, so all 16
 * levels are used; u = round(x / scale) + 8.
 */
function int4SymGroup(x: Float32Array, xBase: number, k0: number, k1: number, q: Uint8Array, qBase: number, layout: PackedLayout): number {
  let amax = 0;
  let max = 0;
  for (let k = k0; k < k1; k++) {
    const v = x[xBase + k];
    if (Math.abs(v) > amax) (amax = Math.abs(v)), (max = v);
  }
  const scale = storeScale(max / -8, layout);
  for (let k = k0; k < k1; k++) setNibble(q, qBase, k, scale ? clamp(Math.round(x[xBase + k] / scale) + 8, 0, 15) : 8);
  return scale;
}

/** Asymmetric int4: [min, max] (with 0 inside) over 15 steps; zero = round(-min / scale). */
function int4AsymGroup(x: Float32Array, xBase: number, k0: number, k1: number, q: Uint8Array, qBase: number, layout: PackedLayout): [number, number] {
  let lo = 0;
  let hi = 0;
  for (let k = k0; k < k1; k++) (lo = Math.min(lo, x[xBase + k])), (hi = Math.max(hi, x[xBase + k]));
  const scale = storeScale((hi - lo) / 15, layout);
  const zero = scale ? clamp(Math.round(-lo / scale), 0, 15) : 8;
  for (let k = k0; k < k1; k++) setNibble(q, qBase, k, scale ? clamp(Math.round(x[xBase + k] / scale) + zero, 0, 15) : zero);
  return [scale, zero];
}

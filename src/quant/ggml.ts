/**
 * GGUF Q8_0 / Q4_0 tensors onto the packed formats without dequantizing: the integers
 * and f16 scales are moved, not recomputed (Q4_0's nibbles are reordered from
 * [j | j+16] per block byte to [2i | 2i+1]). Rows must be whole blocks (cols % 32 == 0),
 * which GGUF requires of these types.
 */
import { f16Lookup } from "../checkpoint/fp16.js";
import { isKQuant } from "../checkpoint/ggml-kquants.js";
import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK } from "../checkpoint/ggml-quants.js";
import type { PackedDType, PackedMatrix } from "./packed.js";

export const GGML_LAYOUT = { groupSize: QK, asym: false, scale: "f16" } as const;

/** The packed dtype a GGML block-quantized tensor is kept as (Q8_0 int8, Q4_0 int4, K-quants as they are); undefined for other dtypes. */
export function ggmlPackedDType(dtype: string): PackedDType | undefined {
  return dtype === "q8_0" ? "int8" : dtype === "q4_0" ? "int4" : isKQuant(dtype) ? dtype : undefined;
}

/** raw: the tensor's blocks [rows * cols / 32] of 34 bytes -> int8, groups of 32, f16 scales. */
export function packedFromQ8_0(raw: Uint8Array, rows: number, cols: number): PackedMatrix {
  const nb = (rows * cols) / QK;
  if (cols % QK || raw.length !== nb * Q8_0_BLOCK_BYTES) throw new Error(`Q8_0 [${rows}, ${cols}]: ${raw.length} bytes`);
  const t = f16Lookup();
  const q = new Uint8Array(rows * cols); // [rows, cols] int8
  const scales = new Float32Array(nb); // [rows, cols / 32]: blocks run along rows
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    scales[b] = t[raw[o] | (raw[o + 1] << 8)];
    q.set(raw.subarray(o + 2, o + 2 + QK), b * QK);
  }
  return { dtype: "int8", layout: { ...GGML_LAYOUT }, rows, cols, q, scales, zeros: null };
}

/** raw: blocks of 18 bytes -> symmetric int4 (zero 8), groups of 32, f16 scales. */
export function packedFromQ4_0(raw: Uint8Array, rows: number, cols: number): PackedMatrix {
  const nb = (rows * cols) / QK;
  if (cols % QK || raw.length !== nb * Q4_0_BLOCK_BYTES) throw new Error(`Q4_0 [${rows}, ${cols}]: ${raw.length} bytes`);
  const t = f16Lookup();
  const q = new Uint8Array((rows * cols) / 2); // [rows, cols / 2]
  const scales = new Float32Array(nb);
  const half = QK / 2;
  for (let b = 0; b < nb; b++) {
    const o = b * Q4_0_BLOCK_BYTES;
    scales[b] = t[raw[o] | (raw[o + 1] << 8)];
    const u = (j: number) => (j < half ? raw[o + 2 + j] & 0xf : raw[o + 2 + j - half] >> 4); // element j of the block
    for (let i = 0; i < half; i++) q[b * half + i] = u(2 * i) | (u(2 * i + 1) << 4);
  }
  return { dtype: "int4", layout: { ...GGML_LAYOUT }, rows, cols, q, scales, zeros: null };
}

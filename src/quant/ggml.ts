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
  // plain loops (a subarray per 32-byte block cost more than the copy: seconds on a 1 GB file),
  // 16 bits at a time where raw starts on an even byte (a block is 34 bytes: its quants too)
  const raw16 = raw.byteOffset % 2 === 0 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length >> 1) : null;
  const q16 = new Uint16Array(q.buffer);
  for (let b = 0, o = 0; b < nb; b++, o += Q8_0_BLOCK_BYTES) {
    scales[b] = t[raw[o] | (raw[o + 1] << 8)];
    if (raw16) for (let j = 0, s = (o >> 1) + 1, d = b * 16; j < 16; j++) q16[d + j] = raw16[s + j];
    else for (let j = 0, d = b * QK; j < QK; j++) q[d + j] = raw[o + 2 + j];
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
  // element j < 16 is the low nibble of block byte j, element j >= 16 the high nibble of byte j - 16;
  // out byte i holds elements 2i (low) and 2i + 1 (high). 16 bits at a time where raw starts on an
  // even byte (a block is 18 bytes): a 16-bit word of the block gives an out byte of each half.
  const raw16 = raw.byteOffset % 2 === 0 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length >> 1) : null;
  for (let b = 0, o = 0, d = 0; b < nb; b++, o += Q4_0_BLOCK_BYTES, d += 16) {
    scales[b] = t[raw[o] | (raw[o + 1] << 8)];
    if (raw16) {
      for (let i = 0, s = (o >> 1) + 1; i < 8; i++) {
        const w = raw16[s + i];
        q[d + i] = (w & 0x0f) | ((w >> 4) & 0xf0);
        q[d + 8 + i] = ((w >> 4) & 0x0f) | ((w >> 8) & 0xf0);
      }
      continue;
    }
    const x = o + 2;
    for (let i = 0; i < 8; i++) q[d + i] = (raw[x + 2 * i] & 0xf) | ((raw[x + 2 * i + 1] & 0xf) << 4);
    for (let i = 0; i < 8; i++) q[d + 8 + i] = (raw[x + 2 * i] >> 4) | (raw[x + 2 * i + 1] & 0xf0);
  }
  return { dtype: "int4", layout: { ...GGML_LAYOUT }, rows, cols, q, scales, zeros: null };
}

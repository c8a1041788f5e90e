/**
 * GGML's Q8_0 and Q4_0 block formats: 32 values per block with one f16 scale.
 * Quantization follows ggml's reference (quantize_row_q*_0_ref) in float32 arithmetic,
 * so files we write dequantize to the same values llama.cpp would produce.
 *   Q8_0 block (34 bytes): f16 d; int8 qs[32];        x[j] = d * qs[j]
 *   Q4_0 block (18 bytes): f16 d; uint8 qs[16];       x[j] = d * ((qs[j] & 15) - 8), x[j+16] = d * ((qs[j] >> 4) - 8)
 */
import { f16Lookup, f32ToF16 } from "./fp16.js";

export const QK = 32;
export const Q8_0_BLOCK_BYTES = 34;
export const Q4_0_BLOCK_BYTES = 18;

const fr = Math.fround;
/** C roundf: halves away from zero. */
const roundf = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));

/** x: [n] with n % 32 == 0 -> bytes: [n / 32 * 34]. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[base + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < QK; j++) view.setInt8(o + 2 + j, roundf(fr(x[base + j] * id)));
  }
  return out;
}

/** bytes: [n / 32 * 34] -> out: [n]. */
export function dequantizeQ8_0(src: Uint8Array, out: Float32Array): Float32Array {
  const t = f16Lookup();
  const nb = out.length / QK;
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = t[src[o] | (src[o + 1] << 8)];
    const base = b * QK;
    for (let j = 0; j < QK; j++) out[base + j] = d * ((src[o + 2 + j] << 24) >> 24); // sign-extend int8
  }
  return out;
}

/** x: [n] with n % 32 == 0 -> bytes: [n / 32 * 18]. */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = x.length / QK;
  const out = new Uint8Array(nb * Q4_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    // The signed value of largest magnitude maps to -8, so the full 4-bit range is used.
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[base + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const o = b * Q4_0_BLOCK_BYTES;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const x0 = Math.min(15, Math.trunc(fr(fr(x[base + j] * id) + 8.5)));
      const x1 = Math.min(15, Math.trunc(fr(fr(x[base + QK / 2 + j] * id) + 8.5)));
      out[o + 2 + j] = x0 | (x1 << 4);
    }
  }
  return out;
}

/** bytes: [n / 32 * 18] -> out: [n]. */
export function dequantizeQ4_0(src: Uint8Array, out: Float32Array): Float32Array {
  const t = f16Lookup();
  const nb = out.length / QK;
  for (let b = 0; b < nb; b++) {
    const o = b * Q4_0_BLOCK_BYTES;
    const d = t[src[o] | (src[o + 1] << 8)];
    const base = b * QK;
    for (let j = 0; j < QK / 2; j++) {
      const q = src[o + 2 + j];
      out[base + j] = d * ((q & 0xf) - 8);
      out[base + QK / 2 + j] = d * ((q >> 4) - 8);
    }
  }
  return out;
}

/**
 * float32 <-> float16 / bfloat16 conversions, round-to-nearest-even, shared by every
 * reader and writer. Scalars for clarity; array versions for tensors.
 */
import type { Bits16 } from "./types.js";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits -> number. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** number -> IEEE half bits, rounding to nearest even (overflow -> inf, NaN stays NaN). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000; // restore the implicit bit
    const shift = 14 - e;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let h = m >>> shift;
    if (rem > half || (rem === half && h & 1)) h++; // may carry into the smallest normal: still right
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still right (max -> inf)
  return h;
}

/** bfloat16 bits -> number. */
export function bf16ToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** number -> bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

let table: Float32Array | null = null;
/** All 65536 halves decoded once: [65536]. */
function f16Table(): Float32Array {
  if (table === null) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16ToF32(h);
  }
  return table;
}

export function f16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const t = f16Table();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]);
  return out;
}

export function bf16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o32[i] = src[i] << 16;
  return out;
}

export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]);
  return out;
}

/** src as bfloat16 if every value is exactly one (its low 16 bits zero), else null; one pass. */
export function f32ArrayToBf16Exact(src: Float32Array): Uint16Array | null {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < u.length; i++) {
    const w = u[i];
    if ((w & 0xffff) !== 0) return null;
    out[i] = w >>> 16;
  }
  return out;
}

/** src as IEEE half if every value is exactly a finite one, else null; one pass. */
export function f32ArrayToF16Exact(src: Float32Array): Uint16Array | null {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < u.length; i++) {
    const w = u[i];
    const e = (w >>> 23) & 0xff;
    if ((w & 0x1fff) === 0 && e >= 113 && e <= 142) {
      out[i] = ((w >>> 16) & 0x8000) | ((e - 112) << 10) | ((w >>> 13) & 0x3ff); // a normal half: the common case
      continue;
    }
    const x = src[i];
    if (!Number.isFinite(x)) return null;
    const h = f32ToF16(x);
    if (f16ToF32(h) !== x) return null;
    out[i] = h;
  }
  return out;
}

/** src in the narrowest 16-bit type that holds every value exactly (bf16 first, then IEEE half), or null: f32 it stays. */
export function f32ArrayTo16Exact(src: Float32Array): Bits16 | null {
  const b = f32ArrayToBf16Exact(src);
  if (b) return { dtype: "bf16", bits: b };
  const h = f32ArrayToF16Exact(src);
  return h ? { dtype: "f16", bits: h } : null;
}

/** Half lookup for hot loops (block scales of quantized formats). */
export function f16Lookup(): Float32Array {
  return f16Table();
}

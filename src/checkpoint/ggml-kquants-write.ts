/**
 * float32 -> Q4_K / Q5_K / Q6_K blocks (layouts in ggml-kquants.ts), for writers and
 * tests. A plain round-to-nearest quantizer, not ggml's weighted search: it only has to
 * make valid blocks whose values are close to the input. Sub-block scales are rounded up
 * to their 6-bit (Q6_K: 8-bit) steps, so a sub-block's range is covered and no value
 * clamps by more than the step of the super-block's min scale.
 */
import { f16Lookup, f32ToF16 } from "./fp16.js";
import { KQUANTS, QK_K, type KQuantDType } from "./ggml-kquants.js";

const fr = Math.fround;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Writes f16(v) at byte o and returns the float32 value that was stored. */
function putF16(out: Uint8Array, o: number, v: number): number {
  const h = f32ToF16(v);
  out[o] = h & 0xff;
  out[o + 1] = h >> 8;
  return f16Lookup()[h];
}

/** Q4_K / Q5_K: x ~= (d * sc) * q - dmin * m with q in [0, 2^bits - 1]; sub-blocks of 32. */
function quantize45(x: Float32Array, xAt: number, out: Uint8Array, o: number, bits: 4 | 5): void {
  const nmax = (1 << bits) - 1;
  const want = new Float32Array(8); // [8] ideal step per sub-block
  const wantMin = new Float32Array(8); // [8] ideal min (>= 0, subtracted)
  for (let j = 0; j < 8; j++) {
    let lo = 0;
    let hi = -Infinity;
    for (let l = 0; l < 32; l++) (lo = Math.min(lo, x[xAt + 32 * j + l])), (hi = Math.max(hi, x[xAt + 32 * j + l]));
    want[j] = (hi - lo) / nmax;
    wantMin[j] = -lo;
  }
  const d = putF16(out, o, Math.max(...want) / 63);
  const dmin = putF16(out, o + 2, Math.max(...wantMin) / 63);
  const sc = want.map((s) => (d > 0 ? clamp(Math.ceil(s / d), 0, 63) : 0));
  const m = wantMin.map((v) => (dmin > 0 ? clamp(Math.ceil(v / dmin), 0, 63) : 0));
  // scales[12]: the inverse of ggml-kquants.ts scaleMin
  const s = o + 4;
  for (let j = 0; j < 4; j++) (out[s + j] = sc[j]), (out[s + j + 4] = m[j]);
  for (let j = 4; j < 8; j++) {
    out[s + j + 4] = (sc[j] & 0xf) | ((m[j] & 0xf) << 4);
    out[s + j - 4] |= (sc[j] >> 4) << 6;
    out[s + j] |= (m[j] >> 4) << 6;
  }
  const q = new Uint8Array(QK_K); // [256] in [0, nmax]
  for (let j = 0; j < 8; j++) {
    const step = fr(d * sc[j]);
    const mn = fr(dmin * m[j]);
    for (let l = 0; l < 32; l++) q[32 * j + l] = step ? clamp(Math.round((x[xAt + 32 * j + l] + mn) / step), 0, nmax) : 0;
  }
  const qs = o + (bits === 4 ? 16 : 48);
  const qh = o + 16; // Q5_K only
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      const a = q[64 * c + l];
      const b = q[64 * c + 32 + l];
      out[qs + 32 * c + l] = (a & 0xf) | ((b & 0xf) << 4);
      if (bits === 5) out[qh + l] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
    }
  }
}

/** Q6_K: x ~= (d * sc) * q with sc int8, q in [-32, 31]; sub-blocks of 16. */
function quantizeQ6(x: Float32Array, xAt: number, out: Uint8Array, o: number): void {
  const want = new Float32Array(16); // [16] ideal step per sub-block
  for (let s = 0; s < 16; s++) {
    let amax = 0;
    for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[xAt + 16 * s + l]));
    want[s] = amax / 31;
  }
  const d = putF16(out, o + 208, Math.max(...want) / 127);
  const q = new Int8Array(QK_K); // [256] in [-32, 31]
  for (let s = 0; s < 16; s++) {
    const sc = d > 0 ? clamp(Math.ceil(want[s] / d), 0, 127) : 0;
    out[o + 192 + s] = sc;
    const step = fr(d * sc);
    for (let l = 0; l < 16; l++) q[16 * s + l] = step ? clamp(Math.round(x[xAt + 16 * s + l] / step), -32, 31) : 0;
  }
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const [u0, u1, u2, u3] = [0, 32, 64, 96].map((k) => q[128 * h + l + k] + 32);
      out[o + 64 * h + l] = (u0 & 0xf) | ((u2 & 0xf) << 4);
      out[o + 64 * h + l + 32] = (u1 & 0xf) | ((u3 & 0xf) << 4);
      out[o + 128 + 32 * h + l] = (u0 >> 4) | ((u1 >> 4) << 2) | ((u2 >> 4) << 4) | ((u3 >> 4) << 6);
    }
  }
}

/** x: [n] with n % 256 == 0 -> bytes: [n / 256 * blockBytes]. */
export function quantizeKQuant(dtype: KQuantDType, x: Float32Array): Uint8Array {
  const f = KQUANTS[dtype];
  if (x.length % QK_K !== 0) throw new RangeError(`${f.typeName}: ${x.length} values is not a multiple of ${QK_K}`);
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * f.blockBytes);
  for (let b = 0; b < nb; b++) {
    if (dtype === "q6_k") quantizeQ6(x, b * QK_K, out, b * f.blockBytes);
    else quantize45(x, b * QK_K, out, b * f.blockBytes, dtype === "q4_k" ? 4 : 5);
  }
  return out;
}

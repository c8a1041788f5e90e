/**
 * GGML's K-quant block formats Q4_K, Q5_K and Q6_K (ggml-common.h / ggml-quants.c):
 * super-blocks of 256 values, split into sub-blocks that each have their own scale.
 *
 *   Q4_K (144 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
 *   Q5_K (176 bytes): f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *     8 sub-blocks of 32: x = (d * sc[s]) * q - (dmin * m[s]), q in [0, 15] (Q5_K: [0, 31])
 *     sc / m are 6-bit, packed in scales[12] (see scaleMin). Values come in chunks of 64:
 *     chunk c holds qs[32c .. 32c+31]; value 64c + l is the low nibble of qs[32c + l]
 *     (sub-block 2c), value 64c + 32 + l the high nibble (sub-block 2c + 1). Q5_K adds
 *     16 when bit 2c (resp. 2c + 1) of qh[l] is set.
 *   Q6_K (210 bytes): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 *     16 sub-blocks of 16: x = (d * scales[s]) * q, q in [-32, 31]. Values come in halves
 *     of 128: half h uses ql[64h ..] and qh[32h ..]; for l < 32, values 128h + l, +32,
 *     +64, +96 take the low nibble of ql[l], low nibble of ql[l + 32], high nibble of
 *     ql[l], high nibble of ql[l + 32], with 2-bit pairs 0, 1, 2, 3 of qh[l] above them.
 *
 * Every format is read through one shape: unpackBlock() gives the 256 integers and
 * per-sub-block float32 scale and min, and x = fround(fround(scale * q) - min), the
 * float32 arithmetic ggml's dequantize_row_q*_K does (min is 0 for Q6_K).
 */
import { f16Lookup } from "./fp16.js";

/** Values per super-block. */
export const QK_K = 256;

export type KQuantDType = "q4_k" | "q5_k" | "q6_k";
export const KQUANT_DTYPES: readonly KQuantDType[] = ["q4_k", "q5_k", "q6_k"];
export const isKQuant = (d: string): d is KQuantDType => (KQUANT_DTYPES as readonly string[]).includes(d);

export interface KQuantFormat {
  /** GGML's name, e.g. "Q4_K". */
  typeName: string;
  blockBytes: number;
  /** Values per sub-block (one scale, and for Q4_K / Q5_K one min, each). */
  subBlock: number;
  /**
   * One super-block at byte `o` of `src` -> q: [256] integers, scale / min: [256 / subBlock]
   * float32 (ggml's d * sc and dmin * m, each rounded to float32).
   */
  unpack(src: Uint8Array, o: number, q: Int8Array, scale: Float32Array, min: Float32Array): void;
}

const fr = Math.fround;

/**
 * Sub-block j's 6-bit scale and min from Q4_K / Q5_K's scales[12]: j < 4 sit in the low
 * 6 bits of bytes j (scale) and j + 4 (min); j >= 4 keep their low 4 bits in the two
 * nibbles of byte j + 4 and their top 2 bits in the spare top bits of bytes j - 4 (scale)
 * and j (min).
 */
export function scaleMin(src: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [src[at + j] & 63, src[at + j + 4] & 63];
  const lo = src[at + j + 4];
  return [(lo & 0xf) | ((src[at + j - 4] >> 6) << 4), (lo >> 4) | ((src[at + j] >> 6) << 4)];
}

/** Q4_K and Q5_K differ only in the fifth bit; qhAt < 0 means Q4_K. */
function unpack45(src: Uint8Array, o: number, qsAt: number, qhAt: number, q: Int8Array, scale: Float32Array, min: Float32Array): void {
  const t = f16Lookup();
  const d = t[src[o] | (src[o + 1] << 8)];
  const dmin = t[src[o + 2] | (src[o + 3] << 8)];
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMin(src, o + 4, j);
    scale[j] = fr(d * sc);
    min[j] = fr(dmin * m);
  }
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      const byte = src[o + qsAt + 32 * c + l];
      const h = qhAt < 0 ? 0 : src[o + qhAt + l];
      q[64 * c + l] = (byte & 0xf) | (((h >> (2 * c)) & 1) << 4);
      q[64 * c + 32 + l] = (byte >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
    }
  }
}

function unpackQ6_K(src: Uint8Array, o: number, q: Int8Array, scale: Float32Array, min: Float32Array): void {
  const d = f16Lookup()[src[o + 208] | (src[o + 209] << 8)];
  for (let s = 0; s < 16; s++) {
    scale[s] = fr(d * ((src[o + 192 + s] << 24) >> 24)); // sign-extend int8
    min[s] = 0;
  }
  for (let h = 0; h < 2; h++) {
    const ql = o + 64 * h;
    const qh = o + 128 + 32 * h;
    for (let l = 0; l < 32; l++) {
      const hi = src[qh + l];
      const base = 128 * h + l;
      q[base] = ((src[ql + l] & 0xf) | ((hi & 3) << 4)) - 32;
      q[base + 32] = ((src[ql + l + 32] & 0xf) | (((hi >> 2) & 3) << 4)) - 32;
      q[base + 64] = ((src[ql + l] >> 4) | (((hi >> 4) & 3) << 4)) - 32;
      q[base + 96] = ((src[ql + l + 32] >> 4) | (((hi >> 6) & 3) << 4)) - 32;
    }
  }
}

export const KQUANTS: Record<KQuantDType, KQuantFormat> = {
  q4_k: { typeName: "Q4_K", blockBytes: 144, subBlock: 32, unpack: (s, o, q, sc, m) => unpack45(s, o, 16, -1, q, sc, m) },
  q5_k: { typeName: "Q5_K", blockBytes: 176, subBlock: 32, unpack: (s, o, q, sc, m) => unpack45(s, o, 48, 16, q, sc, m) },
  q6_k: { typeName: "Q6_K", blockBytes: 210, subBlock: 16, unpack: unpackQ6_K },
};

/** Scratch for one unpacked super-block: q [256], scale / min [256 / subBlock]. */
export function blockScratch(dtype: KQuantDType): { q: Int8Array; scale: Float32Array; min: Float32Array } {
  const subs = QK_K / KQUANTS[dtype].subBlock;
  return { q: new Int8Array(QK_K), scale: new Float32Array(subs), min: new Float32Array(subs) };
}

/**
 * `count` super-blocks starting at byte `at` of src -> out[outAt .. outAt + 256 * count].
 * The one definition of these formats' values.
 */
export function dequantizeKBlocks(dtype: KQuantDType, src: Uint8Array, at: number, count: number, out: Float32Array, outAt: number): void {
  const f = KQUANTS[dtype];
  const { q, scale, min } = blockScratch(dtype);
  const shift = Math.log2(f.subBlock);
  for (let b = 0; b < count; b++) {
    f.unpack(src, at + b * f.blockBytes, q, scale, min);
    const base = outAt + b * QK_K;
    for (let i = 0; i < QK_K; i++) out[base + i] = fr(fr(scale[i >> shift] * q[i]) - min[i >> shift]);
  }
}

/** bytes: [n / 256 * blockBytes] -> out: [n] (n % 256 == 0). */
export function dequantizeKQuant(dtype: KQuantDType, src: Uint8Array, out: Float32Array): Float32Array {
  const count = out.length / QK_K;
  if (!Number.isInteger(count) || src.length < count * KQUANTS[dtype].blockBytes) {
    throw new RangeError(`${KQUANTS[dtype].typeName}: ${src.length} bytes for ${out.length} values`);
  }
  dequantizeKBlocks(dtype, src, 0, count, out, 0);
  return out;
}

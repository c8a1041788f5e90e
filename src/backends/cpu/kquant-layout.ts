/**
 * GGUF K-quant super-blocks (Q4_K, Q5_K, Q6_K: checkpoint/ggml-kquants.ts) in the form the
 * CPU kernels read (assembly/kquant.ts), made as they are copied into the heap. The quant
 * bytes stay as GGUF has them (their order already splits into runs of 16 consecutive
 * columns); only the scales are decoded once, here, instead of in every decode step:
 * the f16 d / dmin become f32, and Q4_K / Q5_K's 6-bit scales and mins, packed three to
 * two bytes, become one byte each. Q4_K / Q5_K rows go in groups of 4 (the decode kernel's row
 * block: one stream, four independent sums; ~15% faster than a row at a time), super-block j
 * of the group's 4 rows side by side; Q6_K rows stay row-major (its 4-row pass was slower):
 *
 *   q4_k (152 B, GGUF 144): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | qs[128]
 *   q5_k (184 B, GGUF 176): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | qh[32] | qs[128]
 *   q6_k (212 B, GGUF 210): f32 d | i8 sc[16] | ql[128] | qh[64]
 *
 * so weights grow by 1-6% (f32 sub-block scales would have been 1.33x for q4_k). Padding the
 * blocks so that every quant load is 16-byte aligned (160 / 192 / 224 B) measured no faster.
 */
import { f16Lookup } from "../../checkpoint/fp16.js";
import { KQUANTS, QK_K, scaleMin, type KQuantDType } from "../../checkpoint/ggml-kquants.js";
import type { PackedMatrix } from "../../quant/packed.js";

/** Bytes of one super-block in the kernel form. */
export const KERNEL_BLOCK_BYTES: Record<KQuantDType, number> = { q4_k: 152, q5_k: 184, q6_k: 212 };
/** assembly/kquant.ts's codes (DT_Q4K ..). */
export const KQUANT_CODE: Record<KQuantDType, number> = { q4_k: 8, q5_k: 9, q6_k: 10 };

/** Rows side by side (assembly/kquant.ts groupRows): 4 for q4_k / q5_k, whose decode kernel takes 4 rows a pass; q6_k row-major. */
export const GROUP_ROWS: Record<KQuantDType, number> = { q4_k: 4, q5_k: 4, q6_k: 1 };

/** The last group is padded with zero blocks (which read as zeros). */
export const kernelFormBytes = (dtype: KQuantDType, rows: number, cols: number) => Math.ceil(rows / GROUP_ROWS[dtype]) * GROUP_ROWS[dtype] * (cols / QK_K) * KERNEL_BLOCK_BYTES[dtype];

/** p's GGUF blocks -> dst [rows, cols / 256, KERNEL_BLOCK_BYTES]; sizes checked before reading. */
export function toKernelForm(dst: Uint8Array, p: PackedMatrix): void {
  const dtype = p.dtype as KQuantDType;
  const f = KQUANTS[dtype];
  const nb = p.cols / QK_K;
  const blocks = p.rows * nb;
  if (p.cols % QK_K !== 0 || p.q.length !== blocks * f.blockBytes || dst.length < kernelFormBytes(dtype, p.rows, p.cols)) {
    throw new RangeError(`cpu backend: ${f.typeName} [${p.rows}, ${p.cols}] has ${p.q.length} bytes, want ${blocks * f.blockBytes} in whole super-blocks of ${QK_K} columns`);
  }
  const t = f16Lookup();
  const src = p.q;
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const ob = KERNEL_BLOCK_BYTES[dtype];
  dst.fill(0, 0, kernelFormBytes(dtype, p.rows, p.cols)); // the padding rows
  for (let b = 0; b < blocks; b++) {
    const i = b * f.blockBytes;
    // row n's block j: group n / G, then block j of the group's G rows side by side
    const G = GROUP_ROWS[dtype];
    const n = Math.floor(b / nb);
    const o = ((Math.floor(n / G) * nb + (b % nb)) * G + (n % G)) * ob;
    if (dtype === "q6_k") {
      view.setFloat32(o, t[src[i + 208] | (src[i + 209] << 8)], true);
      dst.set(src.subarray(i + 192, i + 208), o + 4); // i8 scales
      dst.set(src.subarray(i, i + 192), o + 20); // ql, qh
      continue;
    }
    view.setFloat32(o, t[src[i] | (src[i + 1] << 8)], true);
    view.setFloat32(o + 4, t[src[i + 2] | (src[i + 3] << 8)], true);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMin(src, i + 4, j);
      dst[o + 8 + j] = sc;
      dst[o + 16 + j] = m;
    }
    dst.set(src.subarray(i + 16, i + f.blockBytes), o + 24); // (qh,) qs
  }
}

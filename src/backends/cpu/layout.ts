/**
 * Weight layouts of the CPU target. Matrices stay row-major [out, in] (the matmul
 * kernel reads rows with SIMD dot products, so no retiling is needed) and are stored
 * in f32, bf16 or fp16; vectors stay f32.
 *
 * The engine hands backends float32 values that have already been rounded through the
 * engine dtype, so the dtype can be recovered exactly: a matrix whose values all fit
 * bf16 (or fp16) is stored that way, losing nothing and halving the bytes each decode
 * step reads. packWeight() is the hook an engine builder calls for target "cpu".
 */
import { f32ArrayTo16Exact, f32ArrayToBf16, f32ArrayToF16 } from "../../checkpoint/fp16.js";

export type WeightDType = "f32" | "bf16" | "f16";

export const CPU_LAYOUT = "row-major [out, in]; matrices f32, bf16 or fp16 as built, vectors f32 (16-bit matrices with rows over 4096 values in column blocks of 2048 at load); packed int8 / int4 stored as built (4-row interleaved at load), GGUF Q4_K / Q5_K / Q6_K kept as their blocks (scales decoded at load: packed.ts, kquant-layout.ts)";

export interface PackedWeight {
  dtype: WeightDType;
  shape: number[];
  /** The stored bytes: row-major, or in column blocks where colBlock is set. */
  bytes: Uint8Array;
  /** Columns per block (inColBlocks); absent: row-major. */
  colBlock?: number;
}

/** Columns of a column block: 8 KB of f32 activations, which stay in L1 beside the weight stream. */
export const COL_BLOCK = 2048;

/**
 * Whether a matrix decodes faster in column blocks: 16-bit rows over 4096 values (their
 * activation row, 4 bytes a value, no longer stays in L1 while the weights stream past;
 * f32 matrices of that width go to BLAS, which reads them row-major).
 */
export const wantsColBlocks = (dt: WeightDType, shape: readonly number[]): boolean => dt !== "f32" && shape.length === 2 && shape[1] > 2 * COL_BLOCK;

/**
 * A row-major [N, K] matrix as ceil(K / kc) row-major matrices [N, kc] (the last [N, K mod kc]
 * when kc does not divide K), one after another: assembly/matmul.ts reads it a block at a time.
 */
export function inColBlocks(p: PackedWeight, kc = COL_BLOCK): PackedWeight {
  const [N, K] = p.shape;
  if (p.colBlock !== undefined || p.shape.length !== 2 || kc % 32 !== 0 || kc >= K) throw new RangeError(`inColBlocks: [${p.shape.join(", ")}] in blocks of ${kc} columns`);
  const eb = bytesPer(p.dtype);
  const out = new Uint8Array(p.bytes.byteLength);
  let at = 0;
  for (let k0 = 0; k0 < K; k0 += kc) {
    const span = Math.min(kc, K - k0) * eb;
    for (let n = 0; n < N; n++, at += span) out.set(p.bytes.subarray((n * K + k0) * eb, (n * K + k0) * eb + span), at);
  }
  return { ...p, bytes: out, colBlock: kc };
}

export function bytesPer(dt: WeightDType): number {
  return dt === "f32" ? 4 : 2;
}

/** Packs one weight for the CPU target (row-major, in `dtype`; auto: the narrowest that holds its values exactly); vectors stay f32. */
export function packWeight(values: Float32Array, shape: readonly number[], dtype: WeightDType | "auto" = "auto"): PackedWeight {
  const asBytes = (h: Uint16Array | Float32Array) => new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  const f32: PackedWeight = { dtype: "f32", shape: [...shape], bytes: asBytes(values) };
  if (shape.length < 2 || dtype === "f32") return f32;
  if (dtype === "auto") {
    const h = f32ArrayTo16Exact(values); // one pass (a check, then a rounding conversion, took ~8 s on a 1.1B model)
    return h ? { dtype: h.dtype, shape: [...shape], bytes: asBytes(h.bits) } : f32;
  }
  return { dtype, shape: [...shape], bytes: asBytes(dtype === "bf16" ? f32ArrayToBf16(values) : f32ArrayToF16(values)) };
}

/**
 * Packed weight-only formats: a [rows, cols] matrix stored as small integers with one
 * scale (and, for asymmetric int4, one zero point) per group of `groupSize` columns of a
 * row. The last group of a row is ragged when groupSize does not divide cols.
 *
 *   int8: w[n, k] = scale[n, g] * q[n, k]                 q int8 in [-127, 127]
 *   int4: w[n, k] = scale[n, g] * (u[n, k] - zero[n, g])  u in [0, 15]; zero = 8 unless asym
 *
 * with g = floor(k / groupSize). GGUF Q8_0 is int8 with groups of 32 and f16 scales;
 * Q4_0 is symmetric int4 with groups of 32 and f16 scales (zero 8).
 *
 * w8a8 stores its weights exactly as per-output-channel int8 (groupSize = cols, f32 scales);
 * the dtype says that the matmul also quantizes its input per token (SmoothQuant, w8a8.ts),
 * so a backend that cannot do that must refuse it rather than run it as weight-only.
 *
 * q4_k / q5_k / q6_k are GGUF's K-quant super-blocks kept as they are (checkpoint/ggml-kquants.ts):
 * q holds each row's blocks, which carry their own scales, so `scales` is empty and the
 * layout is fixed (KQUANT_LAYOUT: groups of 256); cols is a multiple of 256.
 */
import { f16ArrayToF32, f32ArrayToF16 } from "../checkpoint/fp16.js";
import { KQUANTS, KQUANT_DTYPES, QK_K, dequantizeKBlocks, isKQuant, type KQuantDType } from "../checkpoint/ggml-kquants.js";

export type PackedDType = "int8" | "int4" | "w8a8" | KQuantDType;
export const PACKED_DTYPES: readonly PackedDType[] = ["int8", "int4", "w8a8", ...KQUANT_DTYPES];
/** The only layout of the K-quant dtypes (scales live inside the blocks). */
export const KQUANT_LAYOUT: PackedLayout = { groupSize: QK_K, asym: false, scale: "f16" };

export interface PackedLayout {
  /** Columns per group; = cols for per-output-channel scales. */
  groupSize: number;
  /** int4 only: a zero point per group (else zero is 8). */
  asym: boolean;
  /** How scales are stored (f16 for GGUF blocks); in memory they are float32 either way. */
  scale: "f32" | "f16";
}

export interface PackedMatrix {
  dtype: PackedDType;
  layout: PackedLayout;
  rows: number;
  cols: number;
  /**
   * int8, w8a8: [rows, cols] bytes of int8; int4: [rows, ceil(cols / 2)], column k in the low nibble of byte k >> 1 when k is even;
   * K-quants: [rows, cols / 256 * blockBytes], each row's super-blocks as GGUF stores them.
   */
  q: Uint8Array;
  /** [rows, groups]; [0] for K-quants. */
  scales: Float32Array;
  /** [rows, groups], asymmetric int4 only. */
  zeros: Uint8Array | null;
}

export const isPackedDType = (d: string): d is PackedDType => (PACKED_DTYPES as readonly string[]).includes(d);

/** dtypes whose q holds one int8 per weight: [rows, cols] bytes. */
export const isInt8Storage = (d: PackedDType): d is "int8" | "w8a8" => d === "int8" || d === "w8a8";

export const groupsPerRow = (cols: number, groupSize: number) => Math.ceil(cols / groupSize);

/** Bytes of one row of q. */
export const rowBytes = (dtype: PackedDType, cols: number) =>
  isInt8Storage(dtype) ? cols : dtype === "int4" ? Math.ceil(cols / 2) : (cols / QK_K) * KQUANTS[dtype].blockBytes;

/** Columns in the last group of a row (= groupSize unless ragged). */
export const lastGroupSize = (cols: number, groupSize: number) => cols - (groupsPerRow(cols, groupSize) - 1) * groupSize;

const align4 = (n: number) => (n + 3) & ~3;

/** Section offsets of the stored form: q, then scales (4-byte aligned), then zero points; K-quants are q alone. */
function sections(dtype: PackedDType, layout: PackedLayout, rows: number, cols: number) {
  if (isKQuant(dtype)) {
    const qBytes = rows * rowBytes(dtype, cols);
    return { G: 0, qBytes, scaleAt: qBytes, zeroAt: qBytes, end: qBytes };
  }
  const G = groupsPerRow(cols, layout.groupSize);
  const qBytes = rows * rowBytes(dtype, cols);
  const scaleAt = align4(qBytes);
  const zeroAt = scaleAt + rows * G * (layout.scale === "f32" ? 4 : 2);
  const end = zeroAt + (dtype === "int4" && layout.asym ? rows * G : 0);
  return { G, qBytes, scaleAt, zeroAt, end };
}

export function packedBytes(dtype: PackedDType, layout: PackedLayout, rows: number, cols: number): number {
  return sections(dtype, layout, rows, cols).end;
}

/** The stored form: q | pad to 4 | scales [rows, G] f32 or f16 | zeros [rows, G] u8 (asym int4). */
export function encodePacked(p: PackedMatrix): Uint8Array {
  const parts = encodePackedParts(p);
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) (out.set(b, at), (at += b.length));
  return out;
}

/** encodePacked's bytes as its parts in order, q not copied (a writer takes them one after another). */
export function encodePackedParts(p: PackedMatrix): Uint8Array[] {
  const s = sections(p.dtype, p.layout, p.rows, p.cols);
  if (p.q.length !== s.qBytes) throw new Error(`packed ${p.dtype} [${p.rows}, ${p.cols}]: q has ${p.q.length} bytes, want ${s.qBytes}`);
  const sc = p.layout.scale === "f32" ? new Uint8Array(p.scales.buffer, p.scales.byteOffset, p.scales.byteLength) : new Uint8Array(f32ArrayToF16(p.scales).buffer);
  const parts = [p.q, new Uint8Array(s.scaleAt - s.qBytes), sc];
  if (p.zeros) parts.push(p.zeros);
  return parts;
}

/** A packed tensor from its stored bytes (encodePacked); q is a view of `bytes`, which the caller must not reuse. */
export function decodePacked(bytes: Uint8Array, dtype: PackedDType, layout: PackedLayout, shape: readonly number[]): PackedMatrix {
  const [rows, cols] = shape;
  if (isKQuant(dtype) && cols % QK_K !== 0) throw new Error(`packed ${dtype} [${rows}, ${cols}]: columns must be whole super-blocks of ${QK_K}`);
  const s = sections(dtype, layout, rows, cols);
  if (bytes.length !== s.end) throw new Error(`packed ${dtype} [${rows}, ${cols}] group ${layout.groupSize}: ${bytes.length} bytes, want ${s.end}`);
  const n = rows * s.G;
  const raw = bytes.slice(s.scaleAt, s.zeroAt); // a copy: aligned for the typed view
  const scales = layout.scale === "f32" ? new Float32Array(raw.buffer, 0, n) : f16ArrayToF32(new Uint16Array(raw.buffer, 0, n));
  const zeros = dtype === "int4" && layout.asym ? bytes.slice(s.zeroAt, s.end) : null;
  // q views bytes, not a copy (the caller hands its buffer over: a whole model's copy took ~1 s)
  return { dtype, layout, rows, cols, q: bytes.subarray(0, s.qBytes), scales, zeros };
}

/** Row n of w as float32 [cols] into `out`: the one definition of every packed format's values. */
export function dequantizeRow(w: PackedMatrix, n: number, out: Float32Array): Float32Array {
  const { cols, layout } = w;
  if (isKQuant(w.dtype)) {
    dequantizeKBlocks(w.dtype, w.q, n * rowBytes(w.dtype, cols), cols / QK_K, out, 0);
    return out;
  }
  const G = groupsPerRow(cols, layout.groupSize);
  const sBase = n * G;
  if (isInt8Storage(w.dtype)) {
    const base = n * cols;
    for (let k = 0; k < cols; k++) out[k] = w.scales[sBase + Math.floor(k / layout.groupSize)] * ((w.q[base + k] << 24) >> 24); // sign-extend
    return out;
  }
  const base = n * rowBytes("int4", cols);
  for (let k = 0; k < cols; k++) {
    const g = Math.floor(k / layout.groupSize);
    const byte = w.q[base + (k >> 1)];
    const u = k & 1 ? byte >> 4 : byte & 0xf;
    const zero = w.zeros ? w.zeros[sBase + g] : 8;
    out[k] = w.scales[sBase + g] * (u - zero);
  }
  return out;
}

/** The whole matrix as float32 [rows, cols]. */
export function dequantize(w: PackedMatrix): Float32Array {
  const out = new Float32Array(w.rows * w.cols);
  for (let n = 0; n < w.rows; n++) dequantizeRow(w, n, out.subarray(n * w.cols, (n + 1) * w.cols));
  return out;
}

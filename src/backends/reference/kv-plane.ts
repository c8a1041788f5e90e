/**
 * One plane (K or V) of one layer's paged KV cache: [numSlots, kvDim] stored as
 * float32, float16, bfloat16 or int8. Ops read a slot's row as float32 and write float32
 * rows, which narrower planes round on the way in.
 *
 * int8 is symmetric with one float32 scale per (slot, KV head): scale = max|x| / 127
 * over that head's headDim values, q = round-to-nearest-even(x * (127 / max|x|)) in
 * [-127, 127], read back as q * scale. Why per slot rather than per block: TensorRT-LLM
 * and vLLM keep int8/fp8 KV with static per-tensor (or per-layer) scales from a
 * calibration pass, which we do not have; a running per-block absmax would requantize
 * a block's earlier slots whenever a new token widens it (rounding twice, and a race
 * when threads write slots of one block at once). A scale per token and head, as
 * LMDeploy's online int8 KV does, is exact to compute when the slot is written, never
 * revisited, and costs 4 bytes per head per slot (1/headDim of the values: 3% at 128).
 * kvRowBytes (backend.ts) counts it.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../checkpoint/fp16.js";
import type { KvDType } from "../backend.js";

/** Round half to even, as the wasm kernels' f32.nearest does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Quantizes one head: dst[i] = q of src[i], returns the scale. All arithmetic in float32
 * so that the cpu kernels store the same bytes. NaN inputs give scale NaN (read back NaN).
 */
export function quantizeHeadI8(dst: Int8Array, src: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < dst.length; i++) m = Math.max(m, Math.abs(src[i]));
  const inv = m > 0 ? Math.fround(127 / m) : 0;
  for (let i = 0; i < dst.length; i++) {
    const v = roundEven(Math.fround(src[i] * inv));
    dst[i] = v !== v ? 0 : Math.min(127, Math.max(-127, v));
  }
  return Math.fround(m / 127);
}

export class KvPlane {
  private readonly f32: Float32Array | null;
  private readonly u16: Uint16Array | null;
  /** int8 values [numSlots, kvDim] and their scales [numSlots, numKvHeads]. */
  private readonly i8: Int8Array | null;
  private readonly scales: Float32Array | null;
  /** Decoded row of a 16-bit or int8 plane; a view of f32 otherwise. */
  private readonly scratch: Float32Array;
  private readonly decode: (h: number) => number;
  private readonly encode: (x: number) => number;
  readonly headDim: number;

  /** headDim: the int8 scale granule (one scale per head); required for int8. */
  constructor(
    readonly dtype: KvDType,
    readonly numSlots: number,
    readonly kvDim: number,
    headDim?: number,
  ) {
    if (dtype === "int8" && headDim === undefined) throw new TypeError("KvPlane: an int8 plane needs headDim (one scale per head)");
    this.headDim = headDim ?? kvDim;
    if (kvDim % this.headDim !== 0) throw new RangeError(`KvPlane: kvDim ${kvDim} is not a multiple of headDim ${this.headDim}`);
    this.f32 = dtype === "f32" ? new Float32Array(numSlots * kvDim) : null;
    this.u16 = dtype === "f16" || dtype === "bf16" ? new Uint16Array(numSlots * kvDim) : null;
    this.i8 = dtype === "int8" ? new Int8Array(numSlots * kvDim) : null;
    this.scales = dtype === "int8" ? new Float32Array(numSlots * (kvDim / this.headDim)) : null;
    this.scratch = new Float32Array(kvDim);
    this.decode = dtype === "bf16" ? bf16ToF32 : f16ToF32;
    this.encode = dtype === "bf16" ? f32ToBf16 : f32ToF16;
  }

  get numKvHeads(): number {
    return this.kvDim / this.headDim;
  }

  get bytes(): number {
    return (this.f32 ?? this.u16 ?? this.i8!).byteLength + (this.scales?.byteLength ?? 0);
  }

  /** The row of `slot` [kvDim] as float32; valid until the next row() call on this plane. */
  row(slot: number): Float32Array {
    if (this.f32) return this.f32.subarray(slot * this.kvDim, (slot + 1) * this.kvDim);
    const base = slot * this.kvDim;
    if (this.i8) {
      const hd = this.headDim;
      for (let h = 0; h < this.numKvHeads; h++) {
        const s = this.scales![slot * this.numKvHeads + h];
        for (let i = h * hd; i < (h + 1) * hd; i++) this.scratch[i] = this.i8[base + i] * s;
      }
      return this.scratch;
    }
    for (let i = 0; i < this.kvDim; i++) this.scratch[i] = this.decode(this.u16![base + i]);
    return this.scratch;
  }

  write(slot: number, src: Float32Array): void {
    if (this.f32) return this.f32.set(src, slot * this.kvDim);
    const base = slot * this.kvDim;
    if (this.i8) {
      const hd = this.headDim;
      for (let h = 0; h < this.numKvHeads; h++) {
        const at = base + h * hd;
        this.scales![slot * this.numKvHeads + h] = quantizeHeadI8(this.i8.subarray(at, at + hd), src.subarray(h * hd, (h + 1) * hd));
      }
      return;
    }
    for (let i = 0; i < this.kvDim; i++) this.u16![base + i] = this.encode(src[i]);
  }

  /** int8 planes: the stored values [kvDim] and scales [numKvHeads] of `slot` (views). */
  int8Slot(slot: number): { q: Int8Array; scales: Float32Array } {
    if (!this.i8) throw new TypeError(`KvPlane: a ${this.dtype} plane has no int8 values`);
    const H = this.numKvHeads;
    return { q: this.i8.subarray(slot * this.kvDim, (slot + 1) * this.kvDim), scales: this.scales!.subarray(slot * H, (slot + 1) * H) };
  }

  /** Copies `count` consecutive slots (values and int8 scales) starting at src to dst. */
  copySlots(src: number, dst: number, count: number): void {
    const a = (this.f32 ?? this.u16 ?? this.i8)!;
    a.copyWithin(dst * this.kvDim, src * this.kvDim, (src + count) * this.kvDim);
    const H = this.numKvHeads;
    this.scales?.copyWithin(dst * H, src * H, (src + count) * H);
  }
}

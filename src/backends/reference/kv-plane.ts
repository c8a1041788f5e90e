/**
 * One plane (K or V) of one layer's paged KV cache: [numSlots, kvDim] stored as
 * float32, float16 or bfloat16. Ops read a slot's row as float32 and write float32
 * rows, which 16-bit planes round (to nearest even) on the way in.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../checkpoint/fp16.js";
import type { KvDType } from "../backend.js";

export class KvPlane {
  private readonly f32: Float32Array | null;
  private readonly u16: Uint16Array | null;
  /** Decoded row of a 16-bit plane; a view of f32 otherwise. */
  private readonly scratch: Float32Array;
  private readonly decode: (h: number) => number;
  private readonly encode: (x: number) => number;

  constructor(
    readonly dtype: KvDType,
    readonly numSlots: number,
    readonly kvDim: number,
  ) {
    this.f32 = dtype === "f32" ? new Float32Array(numSlots * kvDim) : null;
    this.u16 = dtype === "f32" ? null : new Uint16Array(numSlots * kvDim);
    this.scratch = new Float32Array(kvDim);
    this.decode = dtype === "bf16" ? bf16ToF32 : f16ToF32;
    this.encode = dtype === "bf16" ? f32ToBf16 : f32ToF16;
  }

  get bytes(): number {
    return (this.f32 ?? this.u16!).byteLength;
  }

  /** The row of `slot` [kvDim] as float32; valid until the next row() call on this plane. */
  row(slot: number): Float32Array {
    if (this.f32) return this.f32.subarray(slot * this.kvDim, (slot + 1) * this.kvDim);
    const base = slot * this.kvDim;
    for (let i = 0; i < this.kvDim; i++) this.scratch[i] = this.decode(this.u16![base + i]);
    return this.scratch;
  }

  write(slot: number, src: Float32Array): void {
    if (this.f32) return this.f32.set(src, slot * this.kvDim);
    const base = slot * this.kvDim;
    for (let i = 0; i < this.kvDim; i++) this.u16![base + i] = this.encode(src[i]);
  }

  /** Copies `count` consecutive slots starting at src to dst. */
  copySlots(src: number, dst: number, count: number): void {
    const a = (this.f32 ?? this.u16)!;
    a.copyWithin(dst * this.kvDim, src * this.kvDim, (src + count) * this.kvDim);
  }
}

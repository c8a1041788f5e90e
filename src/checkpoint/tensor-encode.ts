/**
 * float32 -> stored bytes for each TensorDType: the writers' half of tensor-data.ts.
 * Also the one type writers accept for "a set of canonical tensors".
 */
import { f32ArrayToBf16, f32ArrayToF16 } from "./fp16.js";
import { quantizeKQuant } from "./ggml-kquants-write.js";
import { quantizeQ4_0, quantizeQ8_0 } from "./ggml-quants.js";
import type { TensorDType } from "./types.js";

/** data: [numel] -> bytes laid out as `dtype` (block formats need numel % 32 == 0, K-quants % 256, row-aligned). */
export function encodeTensor(dtype: TensorDType, data: Float32Array): Uint8Array {
  switch (dtype) {
    case "f32": {
      const copy = new Float32Array(data);
      return new Uint8Array(copy.buffer);
    }
    case "f16":
      return new Uint8Array(f32ArrayToF16(data).buffer);
    case "bf16":
      return new Uint8Array(f32ArrayToBf16(data).buffer);
    case "q8_0":
      return quantizeQ8_0(data);
    case "q4_0":
      return quantizeQ4_0(data);
    case "q4_k":
    case "q5_k":
    case "q6_k":
      return quantizeKQuant(dtype, data);
  }
}

/** Canonical-name tensors for writers: a plain record, a Map, or an open Checkpoint (read lazily). */
export type CanonicalTensors =
  | Record<string, Float32Array>
  | Map<string, Float32Array>
  | { has(name: string): boolean; readF32(name: string): Float32Array };

export function hasTensor(src: CanonicalTensors, name: string): boolean {
  if (src instanceof Map) return src.has(name);
  if (typeof (src as { has?: unknown }).has === "function") return (src as { has(name: string): boolean }).has(name);
  return Object.prototype.hasOwnProperty.call(src, name);
}

export function getTensor(src: CanonicalTensors, name: string): Float32Array | undefined {
  if (src instanceof Map) return src.get(name);
  if (typeof (src as { readF32?: unknown }).readF32 === "function") {
    const c = src as { has(name: string): boolean; readF32(name: string): Float32Array };
    return c.has(name) ? c.readF32(name) : undefined;
  }
  return (src as Record<string, Float32Array>)[name];
}

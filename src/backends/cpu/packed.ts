/**
 * Packed int8 / int4 weights (src/quant/packed.ts) in the CPU backend's shared memory,
 * as they are: q bytes, f32 scales [rows, groups], zero points [rows, groups] (asymmetric
 * int4). assembly/qmatmul.ts reads them directly; nothing is dequantized at bind.
 */
import type { PackedDType, PackedMatrix } from "../../quant/packed.js";
import type { WasmHeap } from "./heap.js";

/** The CPU backend's packed formats; codes mirror assembly/qmatmul.ts (DT_Q8, DT_Q4). */
export const CPU_PACKED_DTYPES: readonly PackedDType[] = ["int8", "int4"];
export const PACKED_CODE: Partial<Record<PackedDType, number>> = { int8: 4, int4: 5 };

/** The kernel may read up to 31 bytes past a row's end (last chunk, against zero activations). */
const TAIL_PAD = 32;

export interface PackedSlot {
  dtype: PackedDType;
  code: number;
  groupSize: number;
  /** f32 [rows, groups] */
  scales: number;
  /** u8 [rows, groups], or 0 (zero point 8) */
  zeros: number;
}

export function packedSlotBytes(p: PackedMatrix): number {
  return p.q.byteLength + TAIL_PAD + p.scales.byteLength + (p.zeros?.byteLength ?? 0) + 3 * 64;
}

/** Copies p into the heap; returns the q pointer, the slot and the bytes a step reads. */
export function placePacked(heap: WasmHeap, name: string, p: PackedMatrix): { ptr: number; slot: PackedSlot; bytes: number } {
  const code = PACKED_CODE[p.dtype];
  if (code === undefined) throw new Error(`cpu backend: weight "${name}" is packed as ${p.dtype}, which the cpu kernels do not read (have: ${CPU_PACKED_DTYPES.join(", ")})`);
  const ptr = heap.alloc(p.q.byteLength + TAIL_PAD, `weight ${name}`);
  heap.u8(ptr, p.q.byteLength).set(p.q);
  const scales = heap.alloc(p.scales.byteLength, `scales of ${name}`);
  heap.f32(scales, p.scales.length).set(p.scales);
  let zeros = 0;
  if (p.zeros) {
    zeros = heap.alloc(p.zeros.byteLength, `zero points of ${name}`);
    heap.u8(zeros, p.zeros.byteLength).set(p.zeros);
  }
  const slot = { dtype: p.dtype, code, groupSize: Math.min(p.layout.groupSize, p.cols), scales, zeros };
  return { ptr, slot, bytes: p.q.byteLength + p.scales.byteLength + (p.zeros?.byteLength ?? 0) };
}

/**
 * Kernel arguments for cuLaunchKernel: each value written into stable native memory at
 * an 8-byte aligned slot, and an array of pointers to the slots (`void** kernelParams`).
 * The driver copies the values at launch, so one packer serves every launch in turn.
 *
 * An argument is typed by how the kernel declares it: "ptr" (a device address,
 * 8 bytes), "i32" (int), "u32", "f32" (float), "u64" (size_t / unsigned long long).
 */
import { loadKoffi } from "./ffi.js";
import type { Ptr } from "./driver.js";

export type ArgType = "ptr" | "i32" | "u32" | "f32" | "u64";
export type Arg = readonly [ArgType, number];

export const MAX_ARGS = 32;
const SLOT = 8;

/** Writes `args` as cuLaunchKernel expects into `values` (MAX_ARGS slots of 8 bytes). */
export function encodeArgs(args: readonly Arg[], values: DataView): void {
  if (args.length > MAX_ARGS) throw new RangeError(`a kernel takes at most ${MAX_ARGS} arguments here, got ${args.length}`);
  args.forEach(([type, v], i) => {
    const at = i * SLOT;
    switch (type) {
      case "ptr":
      case "u64":
        if (!Number.isInteger(v) || v < 0) throw new RangeError(`argument ${i}: ${type} must be a non-negative integer, got ${v}`);
        values.setBigUint64(at, BigInt(v), true);
        break;
      case "i32":
        if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new RangeError(`argument ${i}: i32 out of range: ${v}`);
        values.setInt32(at, v, true);
        break;
      case "u32":
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`argument ${i}: u32 out of range: ${v}`);
        values.setUint32(at, v, true);
        break;
      case "f32":
        values.setFloat32(at, v, true);
        break;
    }
  });
}

export class ArgPacker {
  /** The `void**` to pass as kernelParams. */
  readonly params: Ptr;
  private readonly values: DataView;

  constructor() {
    const koffi = loadKoffi();
    const valuesPtr: Ptr = koffi.alloc("uint8_t", MAX_ARGS * SLOT);
    this.params = koffi.alloc("uint64_t", MAX_ARGS);
    this.values = new DataView(koffi.view(valuesPtr, MAX_ARGS * SLOT) as ArrayBuffer);
    const table = new BigUint64Array(koffi.view(this.params, MAX_ARGS * 8) as ArrayBuffer);
    for (let i = 0; i < MAX_ARGS; i++) table[i] = BigInt(valuesPtr) + BigInt(i * SLOT);
  }

  /** Packs `args`; returns the kernelParams pointer (valid until the next pack). */
  pack(args: readonly Arg[]): Ptr {
    encodeArgs(args, this.values);
    return this.params;
  }
}

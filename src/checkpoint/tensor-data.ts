/**
 * Storage sizes of each TensorDType and the one function that turns a tensor's bytes,
 * read from a ModelFile at an offset, into float32.
 */
import { CheckpointError } from "../errors.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "./fp16.js";
import { KQUANTS, QK_K, dequantizeKQuant } from "./ggml-kquants.js";
import { Q4_0_BLOCK_BYTES, Q8_0_BLOCK_BYTES, QK, dequantizeQ4_0, dequantizeQ8_0 } from "./ggml-quants.js";
import type { ModelFile } from "./file-io.js";
import type { TensorDType } from "./types.js";

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Values and bytes per block of GGML's block formats. */
const BLOCKS: Partial<Record<TensorDType, { values: number; bytes: number }>> = {
  q8_0: { values: QK, bytes: Q8_0_BLOCK_BYTES },
  q4_0: { values: QK, bytes: Q4_0_BLOCK_BYTES },
  q4_k: { values: QK_K, bytes: KQUANTS.q4_k.blockBytes },
  q5_k: { values: QK_K, bytes: KQUANTS.q5_k.blockBytes },
  q6_k: { values: QK_K, bytes: KQUANTS.q6_k.blockBytes },
};

/** Values per block of a block format (32 or 256), or 1 for plain types. */
export const blockValues = (dtype: TensorDType): number => BLOCKS[dtype]?.values ?? 1;

/**
 * Bytes a tensor of this dtype and shape occupies, or a reason it cannot exist
 * (block formats need the innermost dimension to be a multiple of their block: 32, or 256 for K-quants).
 */
export function tensorBytes(dtype: TensorDType, shape: readonly number[]): number | string {
  const n = numel(shape);
  if (!Number.isSafeInteger(n)) return `shape [${shape.join(", ")}] has too many elements`;
  switch (dtype) {
    case "f32":
      return n * 4;
    case "f16":
    case "bf16":
      return n * 2;
    default: {
      const block = BLOCKS[dtype]!;
      const inner = shape.length ? shape[shape.length - 1] : 1;
      if (inner % block.values !== 0) return `${dtype} needs the innermost dimension to be a multiple of ${block.values}, got ${inner}`;
      return (n / block.values) * block.bytes;
    }
  }
}

/** Where one tensor's bytes lie in a file. */
export interface TensorLocation {
  file: ModelFile;
  offset: number;
  dtype: TensorDType;
  shape: number[];
  name: string;
}

/** Checks the location's byte range fits the file; call at open time, before any read. */
export function checkLocation(loc: TensorLocation): number {
  const bytes = tensorBytes(loc.dtype, loc.shape);
  if (typeof bytes === "string") throw new CheckpointError(loc.file.path, `tensor ${loc.name}: ${bytes}`);
  loc.file.check(loc.offset, bytes, `tensor ${loc.name} (${loc.dtype} [${loc.shape.join(", ")}])`);
  return bytes;
}

/** Reads and converts one tensor: [numel(shape)] float32, row-major. */
/** A 16-bit tensor's stored values as they are (readTensorF32 widens exactly these): [numel] in a buffer of its own. */
export function readTensorBits16(loc: TensorLocation & { dtype: "f16" | "bf16" }): Uint16Array {
  const raw = new Uint16Array(numel(loc.shape));
  loc.file.readInto(loc.offset, new Uint8Array(raw.buffer), `tensor ${loc.name}`);
  return raw;
}

export function readTensorF32(loc: TensorLocation): Float32Array {
  const n = numel(loc.shape);
  const what = `tensor ${loc.name}`;
  switch (loc.dtype) {
    case "f32": {
      const out = new Float32Array(n);
      loc.file.readInto(loc.offset, new Uint8Array(out.buffer), what);
      return out;
    }
    case "f16":
    case "bf16": {
      const raw = new Uint16Array(n);
      loc.file.readInto(loc.offset, new Uint8Array(raw.buffer), what);
      return loc.dtype === "f16" ? f16ArrayToF32(raw) : bf16ArrayToF32(raw);
    }
    case "q8_0":
    case "q4_0": {
      const bytes = checkLocation(loc);
      const raw = new Uint8Array(bytes);
      loc.file.readInto(loc.offset, raw, what);
      const out = new Float32Array(n);
      return loc.dtype === "q8_0" ? dequantizeQ8_0(raw, out) : dequantizeQ4_0(raw, out);
    }
    case "q4_k":
    case "q5_k":
    case "q6_k": {
      const raw = new Uint8Array(checkLocation(loc));
      loc.file.readInto(loc.offset, raw, what);
      return dequantizeKQuant(loc.dtype, raw, new Float32Array(n));
    }
  }
}

/** The tensor's stored bytes as they lie in the file (block-quantized tensors kept packed). */
export function readTensorRaw(loc: TensorLocation): Uint8Array {
  const raw = new Uint8Array(checkLocation(loc));
  loc.file.readInto(loc.offset, raw, `tensor ${loc.name}`);
  return raw;
}

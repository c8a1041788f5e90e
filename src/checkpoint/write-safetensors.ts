/**
 * Writes .safetensors files: 8-byte header length, JSON header padded with spaces to a
 * multiple of 8 (so data starts aligned), then each tensor's bytes in order. Streams one
 * tensor at a time.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { encodeTensor } from "./tensor-encode.js";
import { numel } from "./tensor-data.js";

export type SafetensorsDType = "f32" | "f16" | "bf16";

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDType;
  /** Row-major, outermost first. */
  shape: number[];
  /** [numel(shape)]; a function is called only when this tensor is written (big conversions stay lazy). */
  data: Float32Array | (() => Float32Array);
}

/** An int32 tensor written as it is (the packed words of AWQ / GPTQ qweight, qzeros, g_idx). */
export interface SafetensorsI32Tensor {
  name: string;
  dtype: "i32";
  shape: number[];
  /** [numel(shape)] */
  data: Int32Array;
}

/** The tensor's values, checked against its shape. */
function valuesOf(t: SafetensorsTensor): Float32Array {
  const data = typeof t.data === "function" ? t.data() : t.data;
  if (data.length !== numel(t.shape)) {
    throw new RangeError(`writeSafetensors: ${t.name} has ${data.length} values but shape [${t.shape.join(", ")}]`);
  }
  return data;
}

const HEADER_DTYPE: Record<SafetensorsDType | "i32", string> = { f32: "F32", f16: "F16", bf16: "BF16", i32: "I32" };
const ITEM: Record<SafetensorsDType | "i32", number> = { f32: 4, f16: 2, bf16: 2, i32: 4 };

function bytesOf(t: SafetensorsTensor | SafetensorsI32Tensor): Uint8Array {
  if (t.dtype !== "i32") return encodeTensor(t.dtype, valuesOf(t));
  if (t.data.length !== numel(t.shape)) throw new RangeError(`writeSafetensors: ${t.name} has ${t.data.length} values but shape [${t.shape.join(", ")}]`);
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

export function writeSafetensors(file: string, tensors: (SafetensorsTensor | SafetensorsI32Tensor)[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name in header) throw new RangeError(`writeSafetensors: duplicate tensor name ${t.name}`);
    const bytes = numel(t.shape) * ITEM[t.dtype];
    header[t.name] = { dtype: HEADER_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(file, "w");
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.from(json, "utf8"));
    for (const t of tensors) writeSync(fd, bytesOf(t));
  } finally {
    closeSync(fd);
  }
}

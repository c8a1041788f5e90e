/**
 * Writes GGUF v3 (or v2) files: metadata of any GGUF value type, tensors stored as F32,
 * F16, BF16, Q8_0 or Q4_0 (quantized here, as ggml's reference quantizer does), or
 * Q4_K, Q5_K, Q6_K (a simpler round-to-nearest quantizer: ggml-kquants-write.ts).
 * Numbers carry an explicit type, because llama.cpp checks metadata types strictly
 * (block_count must be u32, rope.freq_base f32, ...).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { GGML_TYPE_ID, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from "./gguf-file.js";
import { GGUF_FIXED_SIZE, GGUF_VALUE_TYPES, type GgufValueType } from "./gguf-metadata.js";
import { encodeTensor } from "./tensor-encode.js";
import { numel, tensorBytes } from "./tensor-data.js";
import type { TensorDType } from "./types.js";

export { permuteQkInterleavedToNeox, permuteQkNeoxToInterleaved } from "./rope-permute.js";

type ScalarType = Exclude<GgufValueType, "array">;
type Scalar = number | bigint | boolean | string;

/** A metadata value: strings and booleans as is; numbers and arrays with their GGUF type. */
export type GgufWriteValue =
  | string
  | boolean
  | { type: ScalarType; value: Scalar }
  | { type: "array"; itemType: ScalarType; value: readonly Scalar[] }
  | { type: "array"; itemType: "array"; value: readonly GgufWriteValue[] };

/** Shorthands: gguf.u32(5), gguf.f32(1e-5), gguf.arr("string", tokens). */
export const gguf = {
  u8: (value: number) => ({ type: "u8", value }) as const,
  i8: (value: number) => ({ type: "i8", value }) as const,
  u16: (value: number) => ({ type: "u16", value }) as const,
  i16: (value: number) => ({ type: "i16", value }) as const,
  u32: (value: number) => ({ type: "u32", value }) as const,
  i32: (value: number) => ({ type: "i32", value }) as const,
  u64: (value: number | bigint) => ({ type: "u64", value }) as const,
  i64: (value: number | bigint) => ({ type: "i64", value }) as const,
  f32: (value: number) => ({ type: "f32", value }) as const,
  f64: (value: number) => ({ type: "f64", value }) as const,
  arr: (itemType: ScalarType, value: readonly Scalar[]) => ({ type: "array", itemType, value }) as const,
};

export interface GgufWriteTensor {
  name: string;
  /** Row-major, outermost first (written reversed, as GGUF's ne[]). */
  shape: number[];
  dtype: TensorDType;
  /** [numel(shape)]; a function is called only when this tensor is written. */
  data: Float32Array | (() => Float32Array);
}

export interface GgufWriteOptions {
  version?: 2 | 3;
  /** Data alignment; written as general.alignment when not the default 32. */
  alignment?: number;
}

/** Appends little-endian encodings to a growing list of chunks. */
class Bytes {
  readonly parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  num(type: ScalarType, v: Scalar): void {
    const b = Buffer.alloc(GGUF_FIXED_SIZE[type] ?? 0);
    switch (type) {
      case "u8": b.writeUInt8(Number(v)); break;
      case "i8": b.writeInt8(Number(v)); break;
      case "bool": b.writeUInt8(v ? 1 : 0); break;
      case "u16": b.writeUInt16LE(Number(v)); break;
      case "i16": b.writeInt16LE(Number(v)); break;
      case "u32": b.writeUInt32LE(Number(v)); break;
      case "i32": b.writeInt32LE(Number(v)); break;
      case "f32": b.writeFloatLE(Number(v)); break;
      case "u64": b.writeBigUInt64LE(BigInt(v)); break;
      case "i64": b.writeBigInt64LE(BigInt(v)); break;
      case "f64": b.writeDoubleLE(Number(v)); break;
      case "string": return this.str(String(v));
    }
    this.push(b);
  }
  str(s: string): void {
    const body = Buffer.from(s, "utf8");
    this.num("u64", body.length);
    this.push(body);
  }
  value(v: GgufWriteValue): void {
    if (typeof v === "string") return this.str(v);
    if (typeof v === "boolean") return this.num("bool", v);
    if (v.type !== "array") return this.num(v.type, v.value);
    this.num("u32", GGUF_VALUE_TYPES.indexOf(v.itemType));
    this.num("u64", v.value.length);
    for (const item of v.value) {
      if (v.itemType === "array") this.value(item as GgufWriteValue);
      else this.num(v.itemType, item as Scalar);
    }
  }
}

function typeId(v: GgufWriteValue): number {
  const t = typeof v === "string" ? "string" : typeof v === "boolean" ? "bool" : v.type;
  return GGUF_VALUE_TYPES.indexOf(t);
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export function writeGguf(
  file: string,
  metadata: Record<string, GgufWriteValue>,
  tensors: GgufWriteTensor[],
  opts: GgufWriteOptions = {},
): void {
  const meta = { ...metadata };
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) meta["general.alignment"] = gguf.u32(alignment);

  const head = new Bytes();
  head.push(Buffer.from(GGUF_MAGIC, "latin1"));
  head.num("u32", opts.version ?? 3);
  head.num("u64", tensors.length);
  head.num("u64", Object.keys(meta).length);
  for (const [key, v] of Object.entries(meta)) {
    head.str(key);
    head.num("u32", typeId(v));
    head.value(v);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const bytes = tensorBytes(t.dtype, t.shape);
    if (typeof bytes === "string") throw new RangeError(`writeGguf: tensor ${t.name}: ${bytes}`);
    head.str(t.name);
    head.num("u32", t.shape.length);
    for (const d of [...t.shape].reverse()) head.num("u64", d);
    head.num("u32", GGML_TYPE_ID[t.dtype]);
    head.num("u64", offset);
    sizes.push(bytes);
    offset = alignUp(offset + bytes, alignment);
  }
  head.push(Buffer.alloc(alignUp(head.length, alignment) - head.length));

  const fd = openSync(file, "w");
  try {
    for (const p of head.parts) writeSync(fd, p);
    tensors.forEach((t, i) => {
      const data = typeof t.data === "function" ? t.data() : t.data;
      if (data.length !== numel(t.shape)) {
        throw new RangeError(`writeGguf: ${t.name} has ${data.length} values but shape [${t.shape.join(", ")}]`);
      }
      const bytes = encodeTensor(t.dtype, data);
      writeSync(fd, bytes);
      writeSync(fd, Buffer.alloc(alignUp(sizes[i], alignment) - sizes[i])); // llama.cpp pads the last one too
    });
  } finally {
    closeSync(fd);
  }
}

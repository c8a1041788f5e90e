/**
 * GGUF v2/v3 header parser (little-endian):
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
 *   kv_count x {string key, u32 type, value}, tensor_count x {string name, u32 n_dims,
 *   u64 ne[n_dims] (innermost first), u32 ggml_type, u64 offset}, padding to
 *   general.alignment (default 32), then tensor data at those offsets.
 * Strings are u64 length + UTF-8 bytes. Counts and lengths are checked against the
 * bytes left in the file before anything is allocated.
 */
import { CheckpointError } from "../errors.js";
import { Cursor, ModelFile } from "./file-io.js";
import { GGUF_FIXED_SIZE, GGUF_VALUE_TYPES, GgufArray, GgufMetadata, type GgufValue, type GgufValueType } from "./gguf-metadata.js";
import { tensorBytes } from "./tensor-data.js";
import type { TensorDType } from "./types.js";

export const GGUF_MAGIC = "GGUF";
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml_type ids -> names; the ones llmrt reads carry their dtype. */
export const GGML_TYPES: Record<number, { name: string; dtype?: TensorDType }> = {
  0: { name: "F32", dtype: "f32" }, 1: { name: "F16", dtype: "f16" }, 2: { name: "Q4_0", dtype: "q4_0" },
  3: { name: "Q4_1" }, 6: { name: "Q5_0" }, 7: { name: "Q5_1" }, 8: { name: "Q8_0", dtype: "q8_0" },
  9: { name: "Q8_1" }, 10: { name: "Q2_K" }, 11: { name: "Q3_K" }, 12: { name: "Q4_K", dtype: "q4_k" }, 13: { name: "Q5_K", dtype: "q5_k" },
  14: { name: "Q6_K", dtype: "q6_k" }, 15: { name: "Q8_K" }, 16: { name: "IQ2_XXS" }, 17: { name: "IQ2_XS" }, 18: { name: "IQ3_XXS" },
  19: { name: "IQ1_S" }, 20: { name: "IQ4_NL" }, 21: { name: "IQ3_S" }, 22: { name: "IQ2_S" }, 23: { name: "IQ4_XS" },
  24: { name: "I8" }, 25: { name: "I16" }, 26: { name: "I32" }, 27: { name: "I64" }, 28: { name: "F64" },
  29: { name: "IQ1_M" }, 30: { name: "BF16", dtype: "bf16" }, 34: { name: "TQ1_0" }, 35: { name: "TQ2_0" }, 39: { name: "MXFP4" },
};
export const GGML_TYPE_ID: Record<TensorDType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, q4_k: 12, q5_k: 13, q6_k: 14, bf16: 30 };

const MAX_DIMS = 4;
/** Smallest possible encodings, to reject counts no file of this size could hold. */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;

export interface GgufTensorInfo {
  name: string;
  /** ne[]: innermost dimension first, as GGUF stores it. */
  dims: number[];
  ggmlType: number;
  typeName: string;
  /** Set when llmrt can read this type. */
  dtype?: TensorDType;
  /** Absolute byte offset in the file (data section start + stored offset). */
  offset: number;
}

export interface GgufHeader {
  metadata: GgufMetadata;
  alignment: number;
  dataOffset: number;
  tensors: GgufTensorInfo[];
}

function fail(file: ModelFile, problem: string, hint?: string): never {
  throw new CheckpointError(file.path, problem, hint);
}

function readString(c: Cursor, what: string): string {
  const n = c.u64(`${what} length`);
  if (n > c.remaining) fail(c.file, `${what}: string length ${n} at byte ${c.pos - 8} runs past the end of the file`);
  return c.utf8(n, what);
}

function valueType(c: Cursor, what: string): GgufValueType {
  const id = c.u32(`${what} type`);
  const t = GGUF_VALUE_TYPES[id];
  if (t === undefined) fail(c.file, `${what}: unknown value type ${id} at byte ${c.pos - 4}`);
  return t;
}

/** Walks over `count` items without keeping them (strings and nested arrays). */
function skipItems(c: Cursor, type: GgufValueType, count: number, what: string): void {
  const size = GGUF_FIXED_SIZE[type];
  if (size !== undefined) return c.skip(count * size, what);
  for (let i = 0; i < count; i++) {
    // Hot for 150k-token vocabularies: messages are built only on failure.
    if (type === "string") {
      const n = c.u64(what);
      if (n > c.remaining) fail(c.file, `${what}[${i}]: string length ${n} runs past the end of the file`);
      c.pos += n;
    } else {
      const t = valueType(c, `${what}[${i}]`);
      const n = arrayCount(c, t, `${what}[${i}]`);
      skipItems(c, t, n, what);
    }
  }
}

function arrayCount(c: Cursor, itemType: GgufValueType, what: string): number {
  const n = c.u64(`${what} count`);
  const min = GGUF_FIXED_SIZE[itemType] ?? (itemType === "string" ? 8 : 12);
  if (n * min > c.remaining) {
    fail(c.file, `${what}: array of ${n} ${itemType} items cannot fit in the ${c.remaining} bytes left`);
  }
  return n;
}

/**
 * The shortest decimal that is this float32: hyperparameters were decimals before they
 * were stored as f32, so 9.99999974e-6 reads back as the 1e-5 it was written from.
 */
function shortestF32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

function readValue(c: Cursor, type: GgufValueType, what: string): GgufValue {
  switch (type) {
    case "u8": return c.u8(what);
    case "i8": return c.i8(what);
    case "bool": return c.u8(what) !== 0;
    case "u16": return c.u16(what);
    case "i16": return c.i16(what);
    case "u32": return c.u32(what);
    case "i32": return c.i32(what);
    case "f32": return shortestF32(c.f32(what));
    case "f64": return c.f64(what);
    case "u64": { const v = c.u64big(what); return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
    case "i64": { const v = c.i64big(what); return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
    case "string": return readString(c, what);
    case "array": {
      const itemType = valueType(c, `${what} item`);
      const n = arrayCount(c, itemType, what);
      const start = c.pos;
      skipItems(c, itemType, n, what);
      return new GgufArray(itemType, n, c.file.read(start, c.pos - start, what));
    }
  }
}

function readPreamble(c: Cursor): { version: number; tensorCount: number; kvCount: number } {
  const f = c.file;
  if (f.size < 24) fail(f, `only ${f.size} bytes: too short for a GGUF header`);
  const magic = c.bytes(4, "magic");
  if (magic.toString("latin1") !== GGUF_MAGIC) {
    fail(f, `not a GGUF file: magic is ${JSON.stringify(magic.toString("latin1"))} (0x${magic.toString("hex")}), expected "GGUF"`);
  }
  const version = c.u32("version");
  if (version === 1) {
    fail(f, "GGUF version 1 is not supported (the 2023 format with 32-bit counts)",
      "re-convert the model with a current llama.cpp (convert_hf_to_gguf.py) to get GGUF v3");
  }
  const swapped = ((version & 0xff) << 24) | ((version >>> 8) & 0xff) << 16 | ((version >>> 16) & 0xff) << 8 | (version >>> 24);
  if (swapped === 2 || swapped === 3) fail(f, "big-endian GGUF is not supported", "use the little-endian release of the model");
  if (version !== 2 && version !== 3) fail(f, `unsupported GGUF version ${version} (llmrt reads versions 2 and 3)`);
  const tensorCount = c.u64("tensor count");
  const kvCount = c.u64("metadata count");
  if (kvCount * MIN_KV_BYTES > c.remaining) fail(f, `metadata count ${kvCount} is impossible for a file of ${f.size} bytes`);
  if (tensorCount * MIN_TENSOR_INFO_BYTES > c.remaining) fail(f, `tensor count ${tensorCount} is impossible for a file of ${f.size} bytes`);
  return { version, tensorCount, kvCount };
}

function readMetadata(c: Cursor): GgufMetadata {
  const { version, tensorCount, kvCount } = readPreamble(c);
  const map = new Map<string, { type: GgufValueType; value: GgufValue }>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(c, `metadata key #${i}`);
    const type = valueType(c, `metadata ${key}`);
    map.set(key, { type, value: readValue(c, type, `metadata ${key}`) });
  }
  return new GgufMetadata(c.file.path, version, tensorCount, map);
}

function alignmentOf(f: ModelFile, meta: GgufMetadata): number {
  if (!meta.has("general.alignment")) return GGUF_DEFAULT_ALIGNMENT;
  const a = meta.get("general.alignment");
  if (meta.type("general.alignment") !== "u32" || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0) {
    fail(f, `general.alignment must be a u32 power of two, got ${meta.type("general.alignment")} ${String(a)}`);
  }
  return a;
}

function readTensorInfo(c: Cursor, i: number): Omit<GgufTensorInfo, "offset"> & { rel: number } {
  const name = readString(c, `tensor #${i} name`);
  const nDims = c.u32(`tensor ${name} n_dims`);
  if (nDims > MAX_DIMS) fail(c.file, `tensor ${name}: ${nDims} dimensions (GGUF allows at most ${MAX_DIMS})`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) dims.push(c.u64(`tensor ${name} ne[${d}]`));
  const ggmlType = c.u32(`tensor ${name} type`);
  const rel = c.u64(`tensor ${name} offset`);
  const t = GGML_TYPES[ggmlType];
  return { name, dims, ggmlType, typeName: t?.name ?? `type ${ggmlType}`, dtype: t?.dtype, rel };
}

/** Parses metadata and tensor infos, checking every tensor's byte range against the file. */
export function readGgufHeader(file: ModelFile): GgufHeader {
  const c = new Cursor(file);
  const metadata = readMetadata(c);
  const alignment = alignmentOf(file, metadata);
  const raw = [];
  const seen = new Set<string>();
  for (let i = 0; i < metadata.tensorCount; i++) {
    const t = readTensorInfo(c, i);
    if (seen.has(t.name)) fail(file, `tensor ${t.name} is listed twice`);
    seen.add(t.name);
    raw.push(t);
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = raw.map(({ rel, ...t }): GgufTensorInfo => {
    if (rel % alignment !== 0) fail(file, `tensor ${t.name}: offset ${rel} is not a multiple of the alignment ${alignment}`);
    const offset = dataOffset + rel;
    if (offset > file.size) fail(file, `tensor ${t.name}: offset ${rel} is past the end of the file (${file.size} bytes)`);
    if (t.dtype) {
      const shape = [...t.dims].reverse();
      const bytes = tensorBytes(t.dtype, shape);
      if (typeof bytes === "string") fail(file, `tensor ${t.name}: ${bytes}`);
      if (offset + bytes > file.size) {
        fail(file, `tensor ${t.name} (${t.typeName} [${shape.join(", ")}], ${bytes} bytes at ${offset}) runs past the end of the file (${file.size} bytes)`);
      }
    }
    return { ...t, offset };
  });
  return { metadata, alignment, dataOffset, tensors };
}

/**
 * Reads only a GGUF file's metadata (tokenizer.ggml.*, tokenizer.chat_template,
 * hyperparameters). Works for vocab-only files with 0 tensors.
 */
export function readGgufMetadata(path: string): GgufMetadata {
  const file = new ModelFile(path);
  try {
    return readMetadata(new Cursor(file));
  } finally {
    file.close();
  }
}

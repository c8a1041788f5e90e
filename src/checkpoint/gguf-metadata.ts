/**
 * GGUF metadata values. Arrays keep their raw bytes and decode on first use, so a
 * 150k-entry vocabulary costs one buffer until a tokenizer asks for it.
 */
import { CheckpointError } from "../errors.js";

/** GGUF value types, indexed by their on-disk id (gguf_type). */
export const GGUF_VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

/** Bytes per item of fixed-size types. */
export const GGUF_FIXED_SIZE: Partial<Record<GgufValueType, number>> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8,
};

export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | GgufArray;

/** 64-bit integers become numbers when exact, bigints otherwise. */
function int64(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Decodes `count` items of `type` from raw at byte `at`; returns the items and the end offset. */
function decodeItems(raw: Buffer, type: GgufValueType, count: number, at: number): [GgufValue[], number] {
  const out: GgufValue[] = new Array(count);
  for (let i = 0; i < count; i++) {
    switch (type) {
      case "u8": out[i] = raw.readUInt8(at); at += 1; break;
      case "i8": out[i] = raw.readInt8(at); at += 1; break;
      case "bool": out[i] = raw.readUInt8(at) !== 0; at += 1; break;
      case "u16": out[i] = raw.readUInt16LE(at); at += 2; break;
      case "i16": out[i] = raw.readInt16LE(at); at += 2; break;
      case "u32": out[i] = raw.readUInt32LE(at); at += 4; break;
      case "i32": out[i] = raw.readInt32LE(at); at += 4; break;
      case "f32": out[i] = raw.readFloatLE(at); at += 4; break;
      case "u64": out[i] = int64(raw.readBigUInt64LE(at)); at += 8; break;
      case "i64": out[i] = int64(raw.readBigInt64LE(at)); at += 8; break;
      case "f64": out[i] = raw.readDoubleLE(at); at += 8; break;
      case "string": {
        const n = raw.readUInt32LE(at) + raw.readUInt32LE(at + 4) * 2 ** 32; // bounded by the parser
        out[i] = raw.toString("utf8", at + 8, at + 8 + n);
        at += 8 + n;
        break;
      }
      case "array": {
        const itemType = GGUF_VALUE_TYPES[raw.readUInt32LE(at)];
        const n = Number(raw.readBigUInt64LE(at + 4));
        const start = at + 12;
        const [, end] = decodeItems(raw, itemType, n, start);
        out[i] = new GgufArray(itemType, n, raw.subarray(start, end));
        at = end;
        break;
      }
    }
  }
  return [out, at];
}

export class GgufArray {
  private cache: GgufValue[] | null = null;

  /** raw: the items' bytes exactly as stored (already bounds-checked by the parser). */
  constructor(
    readonly itemType: GgufValueType,
    readonly length: number,
    private readonly raw: Buffer,
  ) {}

  toArray(): GgufValue[] {
    this.cache ??= decodeItems(this.raw, this.itemType, this.length, 0)[0];
    return this.cache;
  }

  /** Item i without decoding the rest (fixed-size types), else via toArray(). */
  at(i: number): GgufValue | undefined {
    if (i < 0 || i >= this.length) return undefined;
    const size = GGUF_FIXED_SIZE[this.itemType];
    if (size !== undefined && this.cache === null) return decodeItems(this.raw, this.itemType, 1, i * size)[0][0];
    return this.toArray()[i];
  }
}

interface Entry {
  type: GgufValueType;
  value: GgufValue;
}

/** A GGUF file's key/value metadata, with typed getters that name the file and key on mismatch. */
export class GgufMetadata {
  constructor(
    readonly file: string,
    readonly version: number,
    readonly tensorCount: number,
    private readonly map: Map<string, Entry>,
  ) {}

  keys(): string[] {
    return [...this.map.keys()];
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  get(key: string): GgufValue | undefined {
    return this.map.get(key)?.value;
  }
  /** The stored value type ("u32", "string", "array", ...). */
  type(key: string): GgufValueType | undefined {
    return this.map.get(key)?.type;
  }
  /** Item type of an array value. */
  itemType(key: string): GgufValueType | undefined {
    const v = this.get(key);
    return v instanceof GgufArray ? v.itemType : undefined;
  }

  string(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === "string") return v;
    throw this.wrongType(key, "a string");
  }

  /** Any numeric scalar as a number (64-bit values beyond 2^53 are rejected). */
  number(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === "number") return v;
    throw this.wrongType(key, "a number");
  }

  bool(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === "boolean") return v;
    throw this.wrongType(key, "a bool");
  }

  array(key: string): GgufArray | undefined {
    const v = this.get(key);
    if (v === undefined || v instanceof GgufArray) return v;
    throw this.wrongType(key, "an array");
  }

  /** An array of strings (e.g. tokenizer.ggml.tokens, tokenizer.ggml.merges). */
  strings(key: string): string[] | undefined {
    const a = this.array(key);
    if (a === undefined) return undefined;
    if (a.itemType !== "string") throw this.wrongType(key, "an array of strings");
    return a.toArray() as string[];
  }

  /** A numeric array (e.g. tokenizer.ggml.scores, tokenizer.ggml.token_type). */
  numbers(key: string): number[] | undefined {
    const a = this.array(key);
    if (a === undefined) return undefined;
    const vals = a.toArray();
    if (!vals.every((x) => typeof x === "number")) throw this.wrongType(key, "an array of numbers");
    return vals as number[];
  }

  private wrongType(key: string, expected: string): CheckpointError {
    const e = this.map.get(key)!;
    const t = e.value instanceof GgufArray ? `array of ${e.value.itemType}` : e.type;
    return new CheckpointError(this.file, `metadata ${key} is ${t}, expected ${expected}`);
  }
}

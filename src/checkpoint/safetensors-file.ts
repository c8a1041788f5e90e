/**
 * One .safetensors file: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the
 * data section the offsets index. Only the header is read at open; every entry is
 * checked against the file size there.
 */
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { ModelFile } from "./file-io.js";
import { readTensorBits16, readTensorF32 } from "./tensor-data.js";
import type { TensorDType } from "./types.js";

/** Bytes per element of every dtype the safetensors format defines. */
const ITEM_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1,
  U16: 2, I16: 2, F16: 2, BF16: 2, U32: 4, I32: 4, F32: 4, U64: 8, I64: 8, F64: 8,
};
const READABLE: Record<string, TensorDType> = { F32: "f32", F16: "f16", BF16: "bf16" };

/** Safetensors caps its JSON header at 100 MB; anything larger is a corrupt length. */
const MAX_HEADER = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  /** As written in the header: "F32", "BF16", ... */
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  nbytes: number;
}

export class SafetensorsFile {
  readonly entries = new Map<string, SafetensorsEntry>();
  readonly metadata: Record<string, string> = {};

  private constructor(readonly file: ModelFile) {}

  static open(path: string): SafetensorsFile {
    const file = new ModelFile(path);
    try {
      const st = new SafetensorsFile(file);
      st.parse();
      return st;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  get path(): string {
    return this.file.path;
  }

  /** The reader dtype of an entry, or an error saying why it cannot be read. */
  tensorDType(e: SafetensorsEntry): TensorDType {
    const d = READABLE[e.dtype];
    if (!d) {
      throw new UnsupportedModelError(
        `${this.path}: tensor ${e.name} has dtype ${e.dtype}; llmrt reads F32, F16 and BF16 safetensors`,
        "use a float16/bfloat16 release of the model, or convert it to GGUF (Q8_0/Q4_0) for quantized weights",
      );
    }
    return d;
  }

  /** A 16-bit tensor's stored values (readF32 widens exactly these). */
  readBits16(name: string, as = name): Uint16Array {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(this.path, `no tensor named "${name}"`);
    const dtype = this.tensorDType(e);
    if (dtype !== "f16" && dtype !== "bf16") throw new CheckpointError(this.path, `tensor ${name} is ${dtype}, not 16-bit`);
    return readTensorBits16({ file: this.file, offset: e.offset, dtype, shape: e.shape, name: as });
  }

  readF32(name: string, as = name): Float32Array {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(this.path, `no tensor named "${name}"`);
    return readTensorF32({ file: this.file, offset: e.offset, dtype: this.tensorDType(e), shape: e.shape, name: as });
  }

  close(): void {
    this.file.close();
  }

  private fail(problem: string): never {
    throw new CheckpointError(this.path, problem, "the safetensors file is truncated or corrupt; download it again");
  }

  private parse(): void {
    const size = this.file.size;
    if (size < 8) this.fail(`only ${size} bytes: too short for a safetensors header (8-byte length + JSON)`);
    const n = Number(this.file.read(0, 8, "header length").readBigUInt64LE(0));
    if (n > size - 8) this.fail(`header length ${n} runs past the end of the file (${size} bytes)`);
    if (n > MAX_HEADER) this.fail(`header length ${n} is over the 100 MB safetensors limit`);
    let header: unknown;
    try {
      header = JSON.parse(this.file.read(8, n, "header").toString("utf8"));
    } catch (e) {
      this.fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) this.fail("header is not a JSON object");
    const dataStart = 8 + n;
    for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (v && typeof v === "object") Object.assign(this.metadata, v);
        continue;
      }
      this.entries.set(name, this.entry(name, v, dataStart, size));
    }
  }

  private entry(name: string, v: unknown, dataStart: number, size: number): SafetensorsEntry {
    const o = (v ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = o.dtype;
    if (typeof dtype !== "string" || !(dtype in ITEM_BYTES)) {
      this.fail(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(ITEM_BYTES).join(", ")})`);
    }
    const shape = o.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      this.fail(`tensor ${name}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offs = o.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((x) => Number.isSafeInteger(x) && x >= 0) || offs[0] > offs[1]) {
      this.fail(`tensor ${name}: data_offsets ${JSON.stringify(offs)} is not [begin, end]`);
    }
    const [begin, end] = offs as number[];
    if (dataStart + end > size) {
      this.fail(`tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the file (data section has ${size - dataStart} bytes)`);
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = count * ITEM_BYTES[dtype];
    if (end - begin !== expected) {
      this.fail(`tensor ${name}: ${dtype} [${(shape as number[]).join(", ")}] needs ${expected} bytes but data_offsets span ${end - begin}`);
    }
    return { name, dtype, shape: shape as number[], offset: dataStart + begin, nbytes: expected };
  }
}

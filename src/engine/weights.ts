/**
 * Executes weight recipes: reads checkpoint tensors, concatenates what a fusion joined,
 * evaluates folded constants on the reference backend, and converts to the storage
 * dtype. The only place weights change form during a build.
 */
import type { WeightMap } from "../backends/backend.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayTo16Exact, f32ArrayToBf16, f32ArrayToF16 } from "../checkpoint/fp16.js";
import type { Bits16, Checkpoint, TensorDType } from "../checkpoint/types.js";
import type { Graph, WeightDecl, WeightSource } from "../graph/ir.js";
import type { PackedDType } from "../quant/packed.js";
import type { StepBatch } from "../graph/step-batch.js";
import type { EngineDType } from "./options.js";

/** Anything weights can be read from by canonical name (a Checkpoint fits). */
export interface TensorReader {
  readF32(name: string): Float32Array;
}

const EMPTY_STEP: StepBatch = {
  numTokens: 0,
  tokenIds: new Int32Array(0),
  positions: new Int32Array(0),
  seqStarts: new Int32Array(1),
  contextLens: new Int32Array(0),
  blockTables: [],
  slotMapping: new Int32Array(0),
  logitRows: new Int32Array(0),
};

/** The float32 values of one recipe. */
export function materialize(src: WeightSource, reader: TensorReader): Float32Array {
  switch (src.kind) {
    case "checkpoint":
      return reader.readF32(src.name);
    case "concat": {
      const parts = src.parts.map((p) => materialize(p, reader));
      const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) (out.set(p, at), (at += p.length));
      return out;
    }
    case "fold":
      return evaluateFolded(src.graph, src.out, reader);
    case "slice":
      return sliceWeight(materialize(src.of, reader), src);
  }
}

/** One rank's shard: rows or columns [start, start + count) of a [rows, cols] matrix, or a range of a vector. */
function sliceWeight(all: Float32Array, s: Extract<WeightSource, { kind: "slice" }>): Float32Array {
  if (s.shape.length === 1 || s.axis === 0) {
    const row = s.shape.length === 1 ? 1 : s.shape[1];
    return all.slice(s.start * row, (s.start + s.count) * row);
  }
  const [rows, cols] = s.shape;
  const out = new Float32Array(rows * s.count); // [rows, count]
  for (let r = 0; r < rows; r++) out.set(all.subarray(r * cols + s.start, r * cols + s.start + s.count), r * s.count);
  return out;
}

/** Runs a graph of static ops once: its weights from their recipes, no step, no cache. */
function evaluateFolded(g: Graph, out: string, reader: TensorReader): Float32Array {
  const weights: WeightMap = new Map();
  for (const [name, d] of g.tensors) if (d.kind === "weight") weights.set(name, materialize(d.source ?? { kind: "checkpoint", name }, reader));
  const kv = { numLayers: 0, numBlocks: 0, blockSize: 1, numKvHeads: 1, headDim: 1 };
  return new ReferenceBackend().bind(g, weights, kv).forward(EMPTY_STEP).get(out)!;
}

/**
 * A weight's values as stored 16-bit bits, where its recipe is a checkpoint tensor (or rows of
 * such tensors) stored in one 16-bit type: read as they are, no f32 on the way (a bf16 model of
 * 1.1B values spent ~12 s of its build widening them and narrowing them back); null otherwise
 * (folded constants, shards and other types go through f32).
 */
function materializeBits16(src: WeightSource, ckpt: Pick<Checkpoint, "readBits16">): Bits16 | null {
  if (!ckpt.readBits16) return null;
  if (src.kind === "checkpoint") return ckpt.readBits16(src.name) ?? null;
  if (src.kind !== "concat") return null;
  const parts: Bits16[] = [];
  for (const p of src.parts) {
    const b = materializeBits16(p, ckpt);
    if (!b || (parts.length && b.dtype !== parts[0].dtype)) return null;
    parts.push(b);
  }
  const bits = new Uint16Array(parts.reduce((n, p) => n + p.bits.length, 0));
  let at = 0;
  for (const p of parts) (bits.set(p.bits, at), (at += p.bits.length));
  return { dtype: parts[0].dtype, bits };
}

/** Whether an engine of `dtype` stores 16-bit values of type `bits` as they are: fp32 (losslessly) and the same 16-bit type. */
function keeps16(dtype: EngineDType, bits: Bits16["dtype"]): boolean {
  return dtype === "fp32" || (dtype === "bf16" && bits === "bf16") || (dtype === "fp16" && bits === "f16");
}

/** The float32 values of a graph's weight. */
export function materializeWeight(g: Graph, name: string, reader: TensorReader): Float32Array {
  const d = g.tensors.get(name) as WeightDecl;
  return materialize(d.source ?? { kind: "checkpoint", name }, reader);
}

/** How a weight of this shape is stored: matrices in the engine dtype, vectors in f32. */
export function storageDType(shape: readonly number[], dtype: EngineDType): TensorDType {
  if (shape.length < 2 || dtype === "fp32") return "f32";
  return dtype === "fp16" ? "f16" : "bf16"; // fp8 engines keep bf16 here; the GPU quantizes at load
}

/**
 * A weight as the engine file stores it: in the engine dtype; in an fp32 engine a matrix whose
 * values are all exactly bf16 (or fp16) ones, as from a 16-bit checkpoint, in those 16 bits:
 * the same values, half the file, and a backend that keeps 16-bit matrices takes them as they
 * are (a 1.1B bf16 model read 4.4 GB of f32 and narrowed it back, ~20 s a load).
 */
export function encodeStored(values: Float32Array, shape: readonly number[], dtype: EngineDType): { dtype: TensorDType; bytes: Uint8Array } {
  const stored = storageDType(shape, dtype);
  const h = stored === "f32" && shape.length >= 2 ? f32ArrayTo16Exact(values) : null;
  return h ? { dtype: h.dtype, bytes: new Uint8Array(h.bits.buffer) } : { dtype: stored, bytes: encodeWeight(values, stored) };
}

/**
 * How the engine file stores a dense weight: a checkpoint's 16-bit bits as they are where the
 * engine keeps that type (keeps16) and no calibration `changed` the weight, else its f32
 * values (the changed ones, or materialized) through encodeStored.
 */
export function storedWeight(g: Graph, name: string, ckpt: Checkpoint, dtype: EngineDType, changed?: Float32Array): { dtype: TensorDType; bytes: Uint8Array } {
  const d = g.tensors.get(name) as WeightDecl;
  const bits = !changed && d.shape.length === 2 ? materializeBits16(d.source ?? { kind: "checkpoint", name }, ckpt) : null;
  if (bits && keeps16(dtype, bits.dtype)) return { dtype: bits.dtype, bytes: new Uint8Array(bits.bits.buffer, bits.bits.byteOffset, bits.bits.byteLength) };
  return encodeStored(changed ?? materializeWeight(g, name, ckpt), d.shape, dtype); // the reference layout is row-major as declared
}

/** float32 -> stored bytes. */
export function encodeWeight(values: Float32Array, dtype: TensorDType): Uint8Array {
  switch (dtype) {
    case "f32":
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case "f16":
      return new Uint8Array(f32ArrayToF16(values).buffer);
    case "bf16":
      return new Uint8Array(f32ArrayToBf16(values).buffer);
    default:
      throw new Error(`engine weights: no encoder for ${dtype}`);
  }
}

/** Stored bytes -> float32 (the reference target computes in fp32: it widens at load). Packed dtypes: see engine/packed-weights.ts decodeEntry. */
export function decodeWeight(bytes: Uint8Array, dtype: TensorDType | PackedDType): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case "f32":
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
    case "f16":
      return f16ArrayToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
    case "bf16":
      return bf16ArrayToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
    default:
      throw new Error(`engine weights: no decoder for ${dtype}${dtype === "int8" || dtype === "int4" ? " here (a quantized engine: read it with decodeEntry)" : ""}`);
  }
}

/** The values a weight has after a round trip through its storage dtype (in-memory engines). */
export function roundTrip(values: Float32Array, dtype: TensorDType): Float32Array {
  return dtype === "f32" ? values : decodeWeight(encodeWeight(values, dtype), dtype);
}

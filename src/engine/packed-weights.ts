/**
 * Packed weights in the build and the load: which weights a build packs (those read
 * only as a matmul's `w`), how (a GGUF's Q8_0 / Q4_0 / K-quant blocks are moved as they are;
 * other weights are quantized under --quant), and how a loader reads them back: packed
 * for a backend that runs the format, dequantized for one that does not yet.
 */
import type { Checkpoint } from "../checkpoint/types.js";
import type { Graph, WeightSource } from "../graph/ir.js";
import { isKQuant } from "../checkpoint/ggml-kquants.js";
import { ggmlPackedDType, packedFromQ4_0, packedFromQ8_0 } from "../quant/ggml.js";
import { packedFromKQuant } from "../quant/kquant.js";
import { W8A8_TARGETS, packedFormatFor, type QuantOptions } from "../quant/options.js";
import { OptionError } from "../errors.js";
import { decodePacked, dequantize, isPackedDType, lastGroupSize, type PackedDType, type PackedMatrix } from "../quant/packed.js";
import { quantize } from "../quant/quantize.js";
import type { TensorEntry } from "./format.js";
import { decodeWeight, materialize } from "./weights.js";

/** Weights read only as the `w` of matmul ops (not an embedding table tied to the classifier). */
export function matmulOnlyWeights(g: Graph): Set<string> {
  const asW = new Set<string>();
  const other = new Set<string>();
  for (const op of g.ops) {
    for (const [k, v] of Object.entries(op)) {
      if (typeof v !== "string" || !g.tensors.has(v) || g.tensors.get(v)!.kind !== "weight") continue;
      (op.op === "matmul" && k === "w" ? asW : other).add(v);
    }
  }
  return new Set([...asW].filter((n) => !other.has(n)));
}

/** A recipe's weight kept in the checkpoint's own packed blocks, or null when any part is not Q8_0 / Q4_0 / an exact AWQ-GPTQ packing. */
export function packedFromCheckpoint(src: WeightSource, ckpt: Checkpoint): PackedMatrix | null {
  if (src.kind === "checkpoint") {
    if (!ckpt.has(src.name)) return null;
    const kept = ckpt.readPacked?.(src.name); // AWQ / GPTQ weights whose layout maps exactly
    if (kept) return kept;
    if (!ckpt.readRaw) return null;
    const info = ckpt.info(src.name);
    if (info.shape.length !== 2 || !ggmlPackedDType(info.dtype)) return null;
    const raw = ckpt.readRaw(src.name);
    if (!raw) return null;
    const [rows, cols] = info.shape;
    if (isKQuant(info.dtype)) return packedFromKQuant(raw, info.dtype, rows, cols); // super-blocks kept whole
    return info.dtype === "q8_0" ? packedFromQ8_0(raw, rows, cols) : packedFromQ4_0(raw, rows, cols);
  }
  if (src.kind !== "concat") return null;
  const parts = src.parts.map((p) => packedFromCheckpoint(p, ckpt));
  const same = (p: PackedMatrix | null) => p && p.dtype === parts[0]!.dtype && p.cols === parts[0]!.cols && JSON.stringify(p.layout) === JSON.stringify(parts[0]!.layout);
  if (!parts.every(same)) return null;
  return concatRows(parts as PackedMatrix[]);
}

/** Rows of same-format matrices stacked (fused QKV, gate|up): groups never span rows. */
function concatRows(parts: PackedMatrix[]): PackedMatrix {
  const cat = <T extends Uint8Array | Float32Array>(arrs: T[], make: (n: number) => T): T => {
    const out = make(arrs.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of arrs) (out.set(a, at), (at += a.length));
    return out;
  };
  const p0 = parts[0];
  return {
    ...p0,
    rows: parts.reduce((n, p) => n + p.rows, 0),
    q: cat(parts.map((p) => p.q), (n) => new Uint8Array(n)),
    scales: cat(parts.map((p) => p.scales), (n) => new Float32Array(n)),
    zeros: p0.zeros ? cat(parts.map((p) => p.zeros!), (n) => new Uint8Array(n)) : null,
  };
}

export interface PackedBuild {
  packed: PackedMatrix;
  /**
   * Kept from the checkpoint: "gguf" (GGML blocks), "awq" / "gptq" (a pre-quantized release);
   * made by this build: "quantized" (round-to-nearest, or w8a8), "calibrated" (GPTQ on --calib-data).
   */
  origin: "gguf" | "awq" | "gptq" | "quantized" | "calibrated";
}

/** The label of a checkpoint's own packed weights: its quantizer, else its file format's blocks. */
const keptOrigin = (ckpt: Checkpoint): PackedBuild["origin"] => ckpt.quantMethod ?? "gguf";

/** How the builder stores weight `name`: packed, or null (the engine dtype as before). */
export function packWeight(g: Graph, name: string, ckpt: Checkpoint, quant: QuantOptions | undefined, keepNative: ((dtype: PackedDType) => boolean) | null, matmulOnly: Set<string>): PackedBuild | null {
  const d = g.tensors.get(name);
  if (!d || d.kind !== "weight" || d.shape.length !== 2 || !matmulOnly.has(name)) return null;
  const src = d.source ?? { kind: "checkpoint", name };
  // null: nothing would be kept, so the blocks are not read (and converted) for nothing
  const native = keepNative ? packedFromCheckpoint(src, ckpt) : null;
  if (native && keepNative!(native.dtype)) return { packed: native, origin: keptOrigin(ckpt) };
  if (!quant) return null;
  const [rows, cols] = d.shape;
  const { dtype, layout } = packedFormatFor(quant, cols);
  return { packed: quantize(materialize(src, ckpt), rows, cols, dtype, layout), origin: "quantized" };
}

/** One line for the build log: what was packed (and where from), and the ragged groups where the group size does not divide a row. */
export function packedSummary(built: { name: string; p: PackedBuild }[]): string | undefined {
  if (built.length === 0) return undefined;
  const kinds = new Map<string, number>();
  const ragged = new Map<string, number>();
  for (const { p } of built) {
    const { dtype, layout, cols } = p.packed;
    const g = (dtype === "int8" || dtype === "w8a8") && layout.groupSize === cols ? "per-channel" : `g${layout.groupSize}${layout.asym ? " asym" : ""}`;
    const key = p.origin === "quantized" ? `${dtype} ${g}` : p.origin === "calibrated" ? `${dtype} ${g} gptq-calibrated` : `${p.origin} ${dtype} ${g}`;
    kinds.set(key, (kinds.get(key) ?? 0) + 1);
    const last = lastGroupSize(cols, layout.groupSize);
    if (last !== layout.groupSize) ragged.set(`${cols} cols -> last group ${last}`, (ragged.get(`${cols} cols -> last group ${last}`) ?? 0) + 1);
  }
  const parts = [`packed ${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}`];
  if (ragged.size) parts.push(`ragged last groups: ${[...ragged].map(([k, n]) => `${n} x ${k}`).join(", ")}`);
  return parts.join("; ");
}

/**
 * A stored tensor read back: float32, or packed for a backend that runs its format. w8a8 is
 * refused where it is not run: widened, it would silently run as weight-only int8.
 */
export function decodeEntry(bytes: Uint8Array, e: TensorEntry, keepPacked: boolean): Float32Array | PackedMatrix {
  if (!isPackedDType(e.dtype)) return decodeWeight(bytes, e.dtype);
  if (!e.quant) throw new Error(`engine tensor ${e.name}: dtype ${e.dtype} without its quant layout`);
  if (e.dtype === "w8a8" && !keepPacked) {
    throw new OptionError("--quant", `tensor ${e.name} is w8a8 (int8 activations as well as weights), which only the ${W8A8_TARGETS.join(" and ")} backends run`, `load the engine on the ${W8A8_TARGETS[0]} backend, or rebuild with --quant int8-wo for this one`);
  }
  const p = decodePacked(bytes, e.dtype, e.quant, e.shape);
  return keepPacked ? p : dequantize(p);
}

/**
 * Packed engine weights (src/quant/packed.ts, `llmrt build --quant int8-wo | int4-wo`, a
 * GGUF's Q8_0 / Q4_0 blocks) on the GPU. A layout that is already a device format of
 * kernels/weights.cuh is uploaded as it is, bytes and scales copied, nothing requantized:
 *   int8, one scale per row, or per group of a multiple of   -> i8 with that group
 *     16 columns that tiles each row (GGUF Q8_0: 32)
 *   int4, zero point 8 (or zero points that are all 8),      -> i4 with that group
 *     groups that tile each row and are a multiple of 32
 *     columns (WI4::vec reads 32 values of one group)
 *   int4 with zero points (--int4-asym, AWQ, GPTQ), the     -> i4z with that group
 *     same groups
 * All keep the engine's bytes: int8 row-major; int4 two per byte, even column in the low
 * nibble (the layout quant_i4_groups writes); scales f32 [rows, groups]; i4z's zero
 * points u8 [rows, groups], as PackedMatrix.zeros holds them.
 * Anything else (ragged last groups, groups the kernels cannot step through, f16
 * activations, which have no int8 / int4 kernels) is dequantized on the host and stored
 * as the backend's weight policy says; the log line says which and why.
 */
import type { PackedWeightMap, WeightMap } from "../backend.js";
import { dequantize, groupsPerRow, type PackedMatrix } from "../../quant/packed.js";
import { QUANT_WEIGHTS, type ActDType } from "./dtypes.js";
import type { WeightRole } from "./weights.js";

export type PackedDevice = { fmt: "i8" | "i4" | "i4z"; group: number } | { why: string };

/** The device format a packed matrix uploads to as it is, or why it cannot. */
export function packedDeviceFormat(m: Pick<PackedMatrix, "dtype" | "layout" | "cols"> & { zeros?: Uint8Array | null }, act: ActDType): PackedDevice {
  const { dtype, layout, cols } = m;
  if (dtype !== "int8" && dtype !== "int4") return { why: `${dtype} has no cuda kernel` };
  const fmt = dtype === "int8" ? "i8" : "i4";
  if (!QUANT_WEIGHTS[act].includes(fmt)) return { why: `no ${dtype} kernels for ${act} activations (build with --dtype bf16 or fp32)` };
  const G = groupsPerRow(cols, layout.groupSize);
  if (dtype === "int8") {
    if (G === 1) return { fmt, group: cols };
    // per-group scales (GGUF Q8_0: 32): WI8::vec reads 16 values of one group
    if (cols % layout.groupSize !== 0) return { why: `ragged last group (${cols} columns in groups of ${layout.groupSize})` };
    return layout.groupSize % 16 === 0 ? { fmt, group: layout.groupSize } : { why: `int8 in groups of ${layout.groupSize} columns (the i8 kernels read 16 at a time)` };
  }
  const group = G === 1 ? cols : layout.groupSize; // one group per row: the row is the group
  if (cols % group !== 0) return { why: `ragged last group (${cols} columns in groups of ${group})` };
  if (group % 32 !== 0) return { why: `groups of ${group} columns (the i4 kernels read 32 at a time)` };
  // a symmetric GPTQ release arrives with a zero point per group, every one 8: the i4 format
  // exactly (no zero bytes to read); real zero points: i4z, the same with a byte per group
  const zp = layout.asym && !(m.zeros?.every((z) => z === 8) ?? false);
  return { fmt: zp ? "i4z" : fmt, group };
}

/** One packed weight's fate at bind: the device format it kept, or why it was dequantized. */
export interface PackedUpload {
  name: string;
  /** e.g. "int4 g128", "int8 per-row". */
  from: string;
  /** "i4 g128", "i8", or null: dequantized on the host. */
  to: string | null;
  why?: string;
}

export function packedLabel(m: Pick<PackedMatrix, "dtype" | "layout" | "cols">): string {
  if (groupsPerRow(m.cols, m.layout.groupSize) === 1 && m.dtype !== "int4") return `${m.dtype} per-row`;
  return `${m.dtype} g${m.layout.groupSize}${m.layout.asym ? " asym" : ""}`;
}

export interface PackedSplit {
  /** Uploaded as they are: name -> matrix and device format. */
  keep: Map<string, { m: PackedMatrix; fmt: "i8" | "i4" | "i4z"; group: number }>;
  /** Dequantized on the host (float32), to store as the weight policy says. */
  widened: WeightMap;
  uploads: PackedUpload[];
}

/** Sorts a bind's packed weights into kept and dequantized; only a matmul's `w` (role linear) can stay packed. */
export function splitPacked(packed: PackedWeightMap, roles: Map<string, WeightRole>, act: ActDType): PackedSplit {
  const out: PackedSplit = { keep: new Map(), widened: new Map(), uploads: [] };
  for (const [name, m] of packed) {
    const role = roles.get(name);
    const dev: PackedDevice = role === "linear" ? packedDeviceFormat(m, act) : { why: role ? `read as a ${role}, not a matmul weight` : "not a weight of the graph" };
    if ("fmt" in dev) out.keep.set(name, { m, ...dev });
    else if (role) out.widened.set(name, dequantize(m));
    out.uploads.push(uploadOf(name, m, dev));
  }
  return out;
}

function uploadOf(name: string, m: PackedMatrix, dev: PackedDevice): PackedUpload {
  return "fmt" in dev ? { name, from: packedLabel(m), to: deviceLabel(dev.fmt, dev.group, m.cols) } : { name, from: packedLabel(m), to: null, why: dev.why };
}

/** "i8" (a scale per row), "i8 g32", "i4 g128", "i4z g64". */
export function deviceLabel(fmt: string, group: number, cols: number): string {
  return fmt === "i4" || fmt === "i4z" || (fmt === "i8" && group !== cols) ? `${fmt} g${group}` : fmt;
}

/**
 * One line for the bind (and build) log: how many packed weights stay packed, as what,
 * and which were dequantized and why (a few names per reason).
 */
export function describeUploads(uploads: PackedUpload[], stored: string): string {
  const count = (keys: string[]) => [...keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>())];
  const kept = uploads.filter((u) => u.to);
  const widened = uploads.filter((u) => !u.to);
  const parts = [`cuda: ${kept.length} of ${uploads.length} packed weights stay packed on the GPU${kept.length ? ` (${count(kept.map((u) => `${u.from} -> ${u.to}`)).map(([k, n]) => `${n} ${k}`).join(", ")})` : ""}`];
  if (widened.length) {
    const byWhy = new Map<string, PackedUpload[]>();
    for (const u of widened) byWhy.set(`${u.from}: ${u.why}`, [...(byWhy.get(`${u.from}: ${u.why}`) ?? []), u]);
    const reasons = [...byWhy].map(([why, us]) => `${us.length} ${why} (${us.slice(0, 2).map((u) => u.name).join(", ")}${us.length > 2 ? ", ..." : ""})`);
    parts.push(`${widened.length} dequantized at load and stored ${stored}: ${reasons.join("; ")}`);
  }
  return parts.join("; ");
}

/** The build log's line for a cuda engine: what bind will do with its packed weights, from the engine dtype (the activation type). */
export function describePackedForCuda(packed: { name: string; packed: PackedMatrix }[], dtype: string): string | undefined {
  if (packed.length === 0) return undefined;
  const act: ActDType = dtype === "fp32" ? "f32" : dtype === "fp16" ? "f16" : "bf16";
  return describeUploads(packed.map(({ name, packed: m }) => uploadOf(name, m, packedDeviceFormat(m, act))), `as ${act}`);
}

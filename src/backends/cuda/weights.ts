/**
 * Weights on the device, by role in the graph:
 *   linear  the `w` of a matmul: [N, K] in the activation type or quantized (i8, i4, fp8)
 *   table   an embedding table (also a tied head): [vocab, H] in the activation type
 *   vector  everything else (norm weights, biases, RoPE frequencies): float32
 * Float32 host values are copied up once and converted or quantized by kernels; with
 * dummy loading a weight missing from the map is filled with random values on the
 * device instead (vLLM's --load-format dummy), so big shapes need no checkpoint.
 */
import type { Graph } from "../../graph/ir.js";
import type { DevPtr } from "./driver.js";
import { scaleCount, weightBytes, zeroCount, type ActDType, type WeightFormat } from "./dtypes.js";
import type { KernelModules } from "./modules.js";

export type WeightRole = "linear" | "table" | "vector";

export interface DeviceWeight {
  name: string;
  role: WeightRole;
  fmt: WeightFormat;
  /** [rows, cols] ([1, n] for vectors). */
  rows: number;
  cols: number;
  ptr: DevPtr;
  /** Scales of i8/i4/i4z/fp8 weights (0 otherwise). */
  scale: DevPtr;
  /** Zero points of i4z weights, one byte per row and group (0 otherwise). */
  zero: DevPtr;
  group: number;
  bytes: number;
}

export interface WeightPolicy {
  act: ActDType;
  /** Format of linear weights ("same": the activation type). */
  linear: "same" | "i8" | "i4" | "i4z" | "fp8";
  int4Group: number;
}

/** Role of every weight: a matmul's w is linear unless it is also an embedding table. */
export function weightRoles(g: Graph): Map<string, WeightRole> {
  const roles = new Map<string, WeightRole>();
  for (const [name, d] of g.tensors) if (d.kind === "weight") roles.set(name, "vector");
  for (const op of g.ops) if (op.op === "matmul") roles.set(op.w, "linear");
  for (const op of g.ops) if (op.op === "embedding" || op.op === "embedding_part") roles.set(op.table, "table");
  return roles;
}

/** The format a weight is stored in on the device. */
export function weightFormat(role: WeightRole, shape: readonly number[], p: WeightPolicy): WeightFormat {
  if (role === "vector") return "f32";
  if (role === "table" || p.linear === "same") return p.act;
  const K = shape[shape.length - 1];
  if ((p.linear === "i4" || p.linear === "i4z") && (K % p.int4Group !== 0 || K % 32 !== 0)) return "i8"; // groups must tile the rows
  return p.linear;
}

export function describeWeight(name: string, shape: readonly number[], role: WeightRole, fmt: WeightFormat, group: number): Omit<DeviceWeight, "ptr" | "scale" | "zero"> {
  const rows = shape.length >= 2 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
  const cols = shape[shape.length - 1] ?? 1;
  const bytes = weightBytes(fmt, rows, cols) + 4 * scaleCount(fmt, rows, cols, group) + zeroCount(fmt, rows, cols, group);
  return { name, role, fmt, rows, cols, group, bytes };
}

/** Grid for grid-stride kernels over n elements. */
export function strideGrid(n: number, smCount: number): [number, number, number] {
  return [Math.max(1, Math.min(Math.ceil(n / 256), smCount * 16)), 1, 1];
}

/** Converts or quantizes the float32 values at `src` (a device scratch) into `w`. */
export function convertWeight(k: KernelModules, w: DeviceWeight, src: DevPtr, amax: DevPtr, smCount: number): void {
  const n = w.rows * w.cols;
  switch (w.fmt) {
    case "f32":
      k.driver.dtodAsync(w.ptr, src, 4 * n, k.stream);
      return;
    case "bf16":
    case "f16":
      return k.launch(`from_f32_${w.fmt}`, strideGrid(n, smCount), [256, 1, 1], [["ptr", w.ptr], ["ptr", src], ["u64", n]]);
    case "i8":
      return k.launch("quant_i8_rows", [w.rows, 1, 1], [256, 1, 1], [["ptr", w.ptr], ["ptr", w.scale], ["ptr", src], ["i32", w.cols]]);
    case "i4":
      return k.launch("quant_i4_groups", [w.rows, w.cols / w.group, 1], [32, 1, 1], [["ptr", w.ptr], ["ptr", w.scale], ["ptr", src], ["i32", w.cols], ["i32", w.group]]);
    case "i4z":
      return k.launch("quant_i4z_groups", [w.rows, w.cols / w.group, 1], [32, 1, 1], [["ptr", w.ptr], ["ptr", w.scale], ["ptr", w.zero], ["ptr", src], ["i32", w.cols], ["i32", w.group]]);
    case "fp8":
      k.driver.memset32Async(amax, 0, 1, k.stream);
      k.launch("absmax_f32", strideGrid(n, smCount), [256, 1, 1], [["ptr", amax], ["ptr", src], ["u64", n]]);
      return k.launch("quant_fp8_tensor", [w.rows, 1, 1], [256, 1, 1], [["ptr", w.ptr], ["ptr", w.scale], ["ptr", src], ["ptr", amax], ["i32", w.cols]]);
  }
}

/** Fills `w` with random values of the scale a checkpoint would have (seeded by name). */
export function fillDummyWeight(k: KernelModules, w: DeviceWeight, seed: number, smCount: number): void {
  const n = w.rows * w.cols;
  let h = seed >>> 0;
  for (let i = 0; i < w.name.length; i++) h = Math.imul(h ^ w.name.charCodeAt(i), 0x01000193) >>> 0;
  const uniform = (fmt: string, ptr: DevPtr, count: number, lo: number, hi: number) =>
    k.launch(`fill_uniform_${fmt}`, strideGrid(count, smCount), [256, 1, 1], [["ptr", ptr], ["u64", count], ["u64", h], ["f32", lo], ["f32", hi]]);
  const a = w.role === "table" ? 1 : Math.sqrt(3 / w.cols); // U(-a, a): unit-variance outputs
  switch (w.fmt) {
    case "f32":
      if (/norm/.test(w.name)) return uniform("f32", w.ptr, n, 0.9, 1.1);
      return uniform("f32", w.ptr, n, -0.1, 0.1);
    case "bf16":
    case "f16":
      return uniform(w.fmt, w.ptr, n, -a, a);
    case "i8":
    case "i4":
    case "i4z": {
      k.launch("fill_bytes", strideGrid(w.bytes, smCount), [256, 1, 1], [["ptr", w.ptr], ["u64", weightBytes(w.fmt, w.rows, w.cols)], ["u64", h]]);
      const s = a / (w.fmt === "i8" ? 127 : 7);
      const count = scaleCount(w.fmt, w.rows, w.cols, w.group);
      // i4z: zero points of 8 give i4's values, read through the zero-point kernels (speed runs)
      if (w.fmt === "i4z") k.launch("fill_bytes_const", strideGrid(count, smCount), [256, 1, 1], [["ptr", w.zero], ["u64", count], ["u32", 8]]);
      return uniform("f32", w.scale, count, s, s);
    }
    case "fp8":
      uniform("fp8", w.ptr, n, -240, 240);
      return uniform("f32", w.scale, w.rows, a / 240, a / 240);
  }
}

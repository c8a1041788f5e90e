/**
 * SmoothQuant's migration: per input channel j of a matmul, s_j = max|X_j|^alpha /
 * max|W_j|^(1 - alpha); the weight's column j is multiplied by s_j and the input X_j is
 * divided by s_j where X is made, so X W^T is unchanged in exact arithmetic while the
 * activation outliers shrink. Where the division is folded (all exact, checked on the graph):
 *
 *   norm   x = rmsnorm(..) * weight      -> the norm weight / s        (qkv, gate|up)
 *   v->o   x = attention(.., v)          -> the V rows of the QKV weight (and bias) / s;
 *          V is not rotated or normed, and each output channel is linear in V's channel
 *          of the head's KV head, so s is shared by the query heads of a KV group
 *   up->down  x = silu(gate) * up        -> the up rows of the gate|up weight (and bias) / s
 *
 * A W8A8 matmul whose input is made any other way (or is read by anything else) is left
 * unsmoothed: quantized, with s = 1.
 */
import type { WeightMap } from "../backends/backend.js";
import { colsOf, opInputs, opLayer, opOutputs, type Graph, type Op } from "../graph/ir.js";
import type { ActivationRanges } from "./calibrate.js";

/** Where a group's input is divided by s: a norm weight, or rows of the matmul that makes it. */
export type SmoothFold =
  | { kind: "norm"; weight: string }
  | { kind: "v->o" | "up->down"; weight: string; bias?: string; /** the first row of the part divided */ row: number };

export interface SmoothGroup {
  /** The activation the matmuls read. */
  x: string;
  /** Weights of the matmuls reading x: their columns are multiplied by s. */
  matmuls: string[];
  fold: SmoothFold;
  /** Distinct factors (= cols of x, or KV channels for v->o). */
  channels: number;
  /** The factor column c of x uses. */
  channelOf: (c: number) => number;
  layer: number | null;
}

export interface SmoothPlan {
  groups: SmoothGroup[];
  /** W8A8 matmul inputs left unsmoothed, with why. */
  unsmoothed: { x: string; why: string }[];
}

/** Groups the W8A8 matmuls (by weight name) by input and finds where each input's division folds. */
export function planSmoothing(g: Graph, w8a8: ReadonlySet<string>): SmoothPlan {
  const readers = new Map<string, Op[]>();
  const maker = new Map<string, Op>();
  for (const op of g.ops) {
    for (const i of opInputs(op)) readers.set(i, [...(readers.get(i) ?? []), op]);
    for (const o of opOutputs(op)) maker.set(o, op);
  }
  const onlyReader = (name: string, op: Op) => readers.get(name)?.length === 1 && readers.get(name)![0] === op;
  const plan: SmoothPlan = { groups: [], unsmoothed: [] };
  const xs = new Set(g.ops.flatMap((op) => (op.op === "matmul" && w8a8.has(op.w) ? [op.x] : [])));
  for (const x of xs) {
    const ms = readers.get(x) ?? [];
    const matmuls = ms.flatMap((op) => (op.op === "matmul" && op.x === x && w8a8.has(op.w) && onlyReader(op.w, op) ? [op.w] : []));
    if (matmuls.length !== ms.length) {
      plan.unsmoothed.push({ x, why: "read by more than W8A8 matmuls" });
      continue;
    }
    const cols = colsOf(g, x);
    const base = { x, matmuls, channels: cols, channelOf: (c: number) => c, layer: opLayer(ms[0]) };
    const p = maker.get(x);
    if ((p?.op === "rmsnorm" && p.groupSize === cols) || p?.op === "add_rmsnorm") {
      if (p.out === x && onlyReader(p.weight, p)) plan.groups.push({ ...base, fold: { kind: "norm", weight: p.weight } });
      else plan.unsmoothed.push({ x, why: `norm weight ${p.weight} is shared` });
      continue;
    }
    const made = p?.op === "silu_mul" || (p?.op === "attention_qkv" && p.out === x) ? p : undefined;
    const src = made && (made.op === "silu_mul" ? made.x : made.op === "attention_qkv" ? made.qkv : undefined);
    const mm = src ? maker.get(src) : undefined;
    if (!made || !src || mm?.op !== "matmul" || !onlyReader(src, made) || !w8a8.has(mm.w) || !onlyReader(mm.w, mm)) {
      plan.unsmoothed.push({ x, why: p ? `made by ${p.op}, which does not fold` : "no producer" });
      continue;
    }
    const bias = mm.bias;
    if (made.op === "silu_mul") {
      plan.groups.push({ ...base, fold: { kind: "up->down", weight: mm.w, bias, row: cols } });
    } else if (made.op === "attention_qkv") {
      const { numHeads, numKvHeads, headDim } = made;
      const group = numHeads / numKvHeads;
      const channelOf = (c: number) => Math.floor(Math.floor(c / headDim) / group) * headDim + (c % headDim);
      plan.groups.push({ ...base, channels: numKvHeads * headDim, channelOf, fold: { kind: "v->o", weight: mm.w, bias, row: (numHeads + numKvHeads) * headDim } });
    }
  }
  return plan;
}

export interface SmoothStats {
  group: SmoothGroup;
  sMin: number;
  sMax: number;
  /** max_j max|X_j| before and after the division. */
  xMaxBefore: number;
  xMaxAfter: number;
  /** max |W| over the group's weights before and after. */
  wMaxBefore: number;
  wMaxAfter: number;
}

/**
 * The smoothed weights (arrays that change are copies; `weights` is left as it was) and
 * per-group stats. Groups are applied in order; each only rescales its own input.
 */
export function applySmoothing(g: Graph, weights: WeightMap, ranges: ActivationRanges, plan: SmoothPlan, alpha: number): { weights: WeightMap; stats: SmoothStats[] } {
  const out: WeightMap = new Map(weights);
  const copied = new Set<string>();
  const mutable = (name: string): Float32Array => {
    if (!copied.has(name)) (out.set(name, out.get(name)!.slice()), copied.add(name));
    return out.get(name)!;
  };
  const stats: SmoothStats[] = [];
  for (const group of plan.groups) {
    const act = ranges.get(group.x);
    if (!act) throw new Error(`smoothquant: no calibration range for ${group.x}`);
    const K = act.length;
    const xMax = new Float64Array(group.channels); // [channels] max |X| over the channel's columns
    const wMax = new Float64Array(group.channels); // [channels] max |W| over rows of every matmul
    for (let c = 0; c < K; c++) xMax[group.channelOf(c)] = Math.max(xMax[group.channelOf(c)], act[c]);
    for (const w of group.matmuls) {
      const W = out.get(w)!; // [N, K]
      for (let i = 0; i < W.length; i++) wMax[group.channelOf(i % K)] = Math.max(wMax[group.channelOf(i % K)], Math.abs(W[i]));
    }
    const s = new Float64Array(group.channels); // [channels]
    for (let j = 0; j < s.length; j++) s[j] = xMax[j] > 0 && wMax[j] > 0 ? Math.max(1e-5, xMax[j] ** alpha / wMax[j] ** (1 - alpha)) : 1;

    foldScales(g, group, s, mutable);
    let xAfter = 0;
    for (let c = 0; c < K; c++) xAfter = Math.max(xAfter, act[c] / s[group.channelOf(c)]);
    let wAfter = 0;
    for (const w of group.matmuls) for (const v of out.get(w)!) wAfter = Math.max(wAfter, Math.abs(v));
    stats.push({ group, sMin: Math.min(...s), sMax: Math.max(...s), xMaxBefore: Math.max(...xMax), xMaxAfter: xAfter, wMaxBefore: Math.max(...wMax), wMaxAfter: wAfter });
  }
  return { weights: out, stats };
}

/**
 * Multiplies the group's matmul columns by s (per channel, [group.channels]) and divides
 * where the group's input is made (the fold), so X W^T is unchanged in exact arithmetic.
 * `mutable(name)` hands out the array to change (a copy, where the caller keeps the original).
 */
export function foldScales(g: Graph, group: SmoothGroup, s: ArrayLike<number>, mutable: (name: string) => Float32Array): void {
  const K = colsOf(g, group.x);
  for (const w of group.matmuls) {
    const W = mutable(w); // [N, K]
    for (let i = 0; i < W.length; i++) W[i] *= s[group.channelOf(i % K)];
  }
  const f = group.fold;
  if (f.kind === "norm") {
    const nw = mutable(f.weight); // [K]
    for (let c = 0; c < K; c++) nw[c] /= s[c];
    return;
  }
  const W = mutable(f.weight); // [rows, in]: rows f.row .. f.row + channels divided
  const inDim = colsOf(g, f.weight);
  for (let j = 0; j < group.channels; j++) for (let k = 0; k < inDim; k++) W[(f.row + j) * inDim + k] /= s[j];
  if (f.bias) {
    const b = mutable(f.bias);
    for (let j = 0; j < group.channels; j++) b[f.row + j] /= s[j];
  }
}

const fmt = (v: number) => (v >= 100 || v < 0.01 ? v.toExponential(1) : v.toPrecision(3));

/** One log line per layer: each group's fold, range of s, and max |x| / max |w| before -> after. */
export function smoothingLog(stats: readonly SmoothStats[], plan: SmoothPlan): string[] {
  const byLayer = new Map<string, string[]>();
  for (const st of stats) {
    const key = st.group.layer === null ? "model" : `layer ${st.group.layer}`;
    const what = st.group.fold.kind === "norm" ? `${st.group.matmuls.join("+")} (norm)` : `${st.group.matmuls.join("+")} (${st.group.fold.kind})`;
    const line = `${what}: s ${fmt(st.sMin)}..${fmt(st.sMax)}, max|x| ${fmt(st.xMaxBefore)} -> ${fmt(st.xMaxAfter)}, max|w| ${fmt(st.wMaxBefore)} -> ${fmt(st.wMaxAfter)}`;
    byLayer.set(key, [...(byLayer.get(key) ?? []), line]);
  }
  const lines = [...byLayer].map(([k, v]) => `${k}: ${v.join("; ")}`);
  for (const u of plan.unsmoothed) lines.push(`unsmoothed ${u.x}: ${u.why}`);
  return lines;
}

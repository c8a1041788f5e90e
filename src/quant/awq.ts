/**
 * Activation-aware scales (after AWQ, Lin et al.), searched per group of matmuls sharing
 * an input: channel j of the input is divided by s_j = m_j^alpha (m_j: the channel's RMS
 * over the calibration tokens, from the Hessian's diagonal; normalized to geometric mean
 * 1) and the weights' column j multiplied by it, folded where the input is made
 * (smooth.ts: norm weight, V rows, up half), so X W^T is unchanged in exact arithmetic
 * while the channels that carry the most signal get finer int4 steps. alpha is chosen per
 * group from a grid by the group's relative output error after round-to-nearest,
 * measured with the group's input Hessian (alpha 0 = no scaling is among the choices).
 */
import type { WeightMap } from "../backends/backend.js";
import { colsOf, type Graph } from "../graph/ir.js";
import { weightedError } from "./gptq.js";
import type { SmoothGroup } from "./smooth.js";
import { foldScales } from "./smooth.js";

export const AWQ_ALPHAS: readonly number[] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/** What the search chose for one group. */
export interface AwqChoice {
  group: SmoothGroup;
  alpha: number;
  /** Sum over the group's matmuls of the relative output error at alpha, and at alpha 0. */
  error: number;
  unscaled: number;
}

/** s per channel ([group.channels]) for `alpha`; H [K, K] is the group input's Hessian. */
export function awqScales(group: SmoothGroup, H: Float64Array, K: number, alpha: number): Float64Array {
  const m = new Float64Array(group.channels); // [channels] RMS, the largest over a channel's columns (v->o: over a KV group's query heads)
  for (let c = 0; c < K; c++) m[group.channelOf(c)] = Math.max(m[group.channelOf(c)], Math.sqrt(H[c * K + c] / 2));
  const s = m.map((v) => Math.max(v, 1e-8) ** alpha);
  const logMean = s.reduce((a, v) => a + Math.log(v), 0) / s.length;
  return s.map((v) => v / Math.exp(logMean));
}

/** Rounds a [rows, cols] weight as the build will (round-to-nearest) and returns its dequantized values. */
export type RoundTrip = (w: Float32Array, rows: number, cols: number) => Float32Array;

/**
 * Searches alpha for each group (in order) and folds the chosen scales; returns the scaled
 * weights (changed arrays are copies) and the choices. `hessians` holds each group input's
 * Hessian from the full-precision model: a group's fold divides only its own input, so the
 * others' Hessians stay valid as groups are scaled.
 */
export function searchAwqScales(g: Graph, weights: WeightMap, groups: readonly SmoothGroup[], hessians: ReadonlyMap<string, Float64Array>, roundTrip: RoundTrip, alphas: readonly number[] = AWQ_ALPHAS): { weights: WeightMap; choices: AwqChoice[] } {
  const out: WeightMap = new Map(weights);
  const copied = new Set<string>();
  const mutable = (name: string): Float32Array => {
    if (!copied.has(name)) (out.set(name, out.get(name)!.slice()), copied.add(name));
    return out.get(name)!;
  };
  const choices: AwqChoice[] = [];
  for (const group of groups) {
    const H = hessians.get(group.x);
    if (!H) throw new Error(`awq: no calibration Hessian for ${group.x}`);
    const K = colsOf(g, group.x);
    const size = new Map(group.matmuls.map((name) => [name, weightedError(out.get(name)!, null, out.get(name)!.length / K, K, H)])); // each output's size, for relative errors
    const errorAt = (alpha: number): number => {
      const s = awqScales(group, H, K, alpha);
      let e = 0;
      for (const name of group.matmuls) {
        const W = out.get(name)!; // [rows, K]
        const rows = W.length / K;
        const scaled = W.map((v, i) => v * s[group.channelOf(i % K)]);
        const back = roundTrip(scaled, rows, K).map((v, i) => v / s[group.channelOf(i % K)]);
        e += size.get(name)! > 0 ? weightedError(W, back, rows, K, H) / size.get(name)! : 0;
      }
      return e;
    };
    const errors = alphas.map(errorAt);
    const best = errors.indexOf(Math.min(...errors));
    const alpha = alphas[best];
    if (alpha !== 0) foldScales(g, group, awqScales(group, H, K, alpha), mutable);
    choices.push({ group, alpha, error: errors[best], unscaled: alphas.includes(0) ? errors[alphas.indexOf(0)] : errorAt(0) });
  }
  return { weights: out, choices };
}

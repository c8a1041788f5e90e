/**
 * --quant auto's per-layer-group mixes, the arithmetic part (src/engine/auto-mix.ts
 * measures): the layer groups (one per linear weight: a block's attn_qkv, attn_output,
 * ffn_gate_up, ffn_down; the untied lm_head), the ladder of formats a group can be
 * promoted along, the greedy promotion under a KL budget, and the short description of
 * a mix for the build log.
 */
import type { QuantOverride, QuantOverrides } from "./overrides.js";

/** One format on the ladder: cheapest first, fp32 (nothing lost) last. */
export interface Rung {
  label: string;
  format: QuantOverride;
  /** Stored bits per weight, scales and zero points included (the cost the greedy pays per promotion). */
  bits: number;
}

/** Bits per weight of a format on a [rows, cols] matrix (f32 scales, one byte per int4 zero point). */
export function bitsPerWeight(f: QuantOverride, cols: number): number {
  if (f === "fp32") return 32;
  if (f.scheme === "int8-wo" || f.scheme === "w8a8") return 8 + 32 / cols;
  const g = f.groupSize!;
  return 4 + 32 / g + (f.asym ? 8 / g : 0);
}

/** A weight's group label parts: block index (null outside the blocks) and role. */
export function groupOf(name: string): { block: number | null; role: string } {
  const m = /^blk\.(\d+)\.(.+?)(\.weight)?$/.exec(name);
  if (m) return { block: Number(m[1]), role: m[2] };
  return { block: null, role: name === "output.weight" ? "lm_head" : name.replace(/\.weight$/, "") };
}

/** Greedy input: per group its weight count, per group and rung its measured sensitivity (KL; the last rung, fp32, is 0). */
export interface MixProblem {
  params: readonly number[];
  rungs: readonly Rung[];
  sensitivity: readonly (readonly number[])[];
}

export const predictedKl = (p: MixProblem, levels: readonly number[]) => levels.reduce((s, l, g) => s + p.sensitivity[g][l], 0);

/**
 * Promotes groups from `levels` until the summed sensitivity is at most `targetKl`: each
 * step takes the promotion (any group, to any higher rung) that removes the most KL per
 * extra stored bit, so sensitive small groups go up first (AutoQuantize's trade, greedily).
 */
export function promote(p: MixProblem, levels: readonly number[], targetKl: number): number[] {
  const out = [...levels];
  let kl = predictedKl(p, out);
  while (kl > targetKl) {
    let best: { g: number; m: number; ratio: number } | null = null;
    for (let g = 0; g < out.length; g++) {
      const l = out[g];
      for (let m = l + 1; m < p.rungs.length; m++) {
        const gain = p.sensitivity[g][l] - p.sensitivity[g][m];
        const cost = Math.max(1e-9, (p.rungs[m].bits - p.rungs[l].bits) * p.params[g]);
        if (gain > 0 && (!best || gain / cost > best.ratio)) best = { g, m, ratio: gain / cost };
      }
    }
    if (!best) break; // every group at a rung no higher one improves
    kl -= p.sensitivity[best.g][out[best.g]] - p.sensitivity[best.g][best.m];
    out[best.g] = best.m;
  }
  return demote(p, out, targetKl);
}

/** Promotion steps are coarse and can overshoot: gives back the bits whose KL still fits, least KL per saved bit first. */
function demote(p: MixProblem, levels: number[], targetKl: number): number[] {
  let kl = predictedKl(p, levels);
  for (;;) {
    let best: { g: number; m: number; ratio: number } | null = null;
    for (let g = 0; g < levels.length; g++) {
      for (let m = 0; m < levels[g]; m++) {
        const added = p.sensitivity[g][m] - p.sensitivity[g][levels[g]];
        const saved = (p.rungs[levels[g]].bits - p.rungs[m].bits) * p.params[g];
        if (kl + added <= targetKl && (!best || added / saved < best.ratio)) best = { g, m, ratio: added / saved };
      }
    }
    if (!best) return levels;
    kl += p.sensitivity[best.g][best.m] - p.sensitivity[best.g][levels[best.g]];
    levels[best.g] = best.m;
  }
}

/** The overrides that store group g (weight names[g]) at rungs[levels[g]], the base rung (0) needing none. */
export function mixOverrides(names: readonly string[], rungs: readonly Rung[], levels: readonly number[]): QuantOverrides {
  const out: QuantOverrides = {};
  names.forEach((n, g) => {
    if (levels[g] !== 0) out[n] = rungs[levels[g]].format;
  });
  return out;
}

/**
 * "blocks 0-3: int4 g32; block 4: int4 g32 except attn_qkv int8; lm_head: int8": a block
 * in one format is one entry, runs of such blocks merge, a mixed block names its majority
 * and the exceptions.
 */
export function describeMix(names: readonly string[], labels: readonly string[]): string {
  const blocks = new Map<number, { role: string; label: string }[]>();
  const outside: string[] = [];
  names.forEach((n, i) => {
    const { block, role } = groupOf(n);
    if (block === null) outside.push(`${role}: ${labels[i]}`);
    else blocks.set(block, [...(blocks.get(block) ?? []), { role, label: labels[i] }]);
  });
  const overall = new Map<string, number>();
  for (const l of labels) overall.set(l, (overall.get(l) ?? 0) + 1);
  const entries: { from: number; to: number; text: string }[] = [];
  for (const b of [...blocks.keys()].sort((x, y) => x - y)) {
    const parts = blocks.get(b)!;
    const counts = new Map<string, number>();
    for (const p of parts) counts.set(p.label, (counts.get(p.label) ?? 0) + 1);
    const major = [...counts].sort((x, y) => y[1] - x[1] || overall.get(y[0])! - overall.get(x[0])!)[0][0]; // ties: the mix's commonest
    const except = parts.filter((p) => p.label !== major).map((p) => `${p.role} ${p.label}`);
    const text = except.length ? `${major} except ${except.join(", ")}` : major;
    const last = entries[entries.length - 1];
    if (last && last.to === b - 1 && last.text === text && !except.length) last.to = b;
    else entries.push({ from: b, to: b, text });
  }
  const blockText = entries.map((e) => `${e.from === e.to ? `block ${e.from}` : `blocks ${e.from}-${e.to}`}: ${e.text}`);
  return [...blockText, ...outside].join("; ");
}

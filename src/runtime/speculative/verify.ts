/**
 * Speculative verification by rejection sampling (Leviathan et al., Chen et al.):
 * draft token d, proposed with probability q(d), is kept with probability
 * min(1, p(d) / q(d)) where p is the target's distribution at that position; the
 * first rejected position instead draws from norm(max(0, p - q)). If every draft is
 * kept, one more token is drawn from the target's next distribution. The output is
 * distributed exactly as sampling from the target alone; under greedy (p a point
 * mass on the argmax) it is token for token the target's greedy output.
 */
import type { Rng } from "../rng.js";
import type { Sampler } from "../sampler.js";

/** A draft token's proposal distribution: sparse probabilities; null = a point mass on the token. */
export type DraftDist = Map<number, number> | null;

export interface Verified {
  /** Tokens to append, in order: the kept drafts, then one corrected or bonus token. */
  tokens: number[];
  /** How many drafts were kept. */
  accepted: number;
}

/**
 * rows[i] [vocab] are the target logits after the fed token i (row 0: after the last
 * committed token; row i: after draft i). rows.length = drafts.length + 1.
 * `onToken` is called for each appended token with its row, in order; returning
 * false stops early (the request finished).
 */
export function verifyDrafts(
  sampler: Sampler,
  rng: Rng,
  rows: Float32Array[],
  drafts: readonly number[],
  q: readonly DraftDist[],
  onToken: (token: number, row: Float32Array) => boolean,
): Verified {
  const tokens: number[] = [];
  let accepted = 0;
  for (let i = 0; i < drafts.length; i++) {
    const d = drafts[i];
    const p = sampler.distribution(rows[i]);
    const pd = probOf(p, d);
    const qd = q[i] === null ? 1 : q[i]!.get(d) ?? 0;
    if (pd > 0 && rng.nextFloat() * qd < pd) {
      sampler.accept(d);
      tokens.push(d);
      accepted++;
      if (!onToken(d, rows[i])) return { tokens, accepted };
      continue;
    }
    const t = drawResidual(p, q[i], d, rng);
    sampler.accept(t);
    tokens.push(t);
    onToken(t, rows[i]);
    return { tokens, accepted };
  }
  const bonus = sampler.sample(rows[drafts.length]).token;
  tokens.push(bonus);
  onToken(bonus, rows[drafts.length]);
  return { tokens, accepted };
}

function probOf(p: { ids: Int32Array; probs: Float64Array }, token: number): number {
  for (let i = 0; i < p.ids.length; i++) if (p.ids[i] === token) return p.probs[i];
  return 0;
}

/** Draws from norm(max(0, p - q)); falls back to p when the residual is empty. */
function drawResidual(p: { ids: Int32Array; probs: Float64Array }, q: DraftDist, d: number, rng: Rng): number {
  const res = new Float64Array(p.ids.length);
  let total = 0;
  for (let i = 0; i < p.ids.length; i++) {
    const qi = q === null ? (p.ids[i] === d ? 1 : 0) : q.get(p.ids[i]) ?? 0;
    res[i] = Math.max(0, p.probs[i] - qi);
    total += res[i];
  }
  const w = total > 0 ? res : p.probs;
  let u = rng.nextFloat() * (total > 0 ? total : 1);
  for (let i = 0; i < w.length; i++) {
    u -= w[i];
    if (u < 0) return p.ids[i];
  }
  // rounding left u a hair above zero: the last token with weight
  for (let i = w.length - 1; i >= 0; i--) if (w[i] > 0) return p.ids[i];
  return p.ids[0];
}

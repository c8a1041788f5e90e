/**
 * Accuracy of a model over a text: perplexity, and agreement with another model
 * (top-1 agreement, mean KL(P_reference || P_candidate) of next-token distributions).
 */
import type { Engine } from "../engine/engine.js";
import { forEachPrediction, logSoftmax } from "./windows.js";

export interface WindowOptions {
  ctx: number;
  stride: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per token (nats). */
  nll: number;
  tokens: number;
}

export function perplexity(engine: Engine, tokens: readonly number[], o: WindowOptions): PerplexityResult {
  let nll = 0;
  let n = 0;
  forEachPrediction(engine, tokens, o.ctx, o.stride, (row, target) => {
    nll -= logSoftmax(row)[target];
    n++;
  }, o.onProgress);
  return { perplexity: Math.exp(nll / n), nll: nll / n, tokens: n };
}

export interface CompareResult {
  /** Share of positions where both models' argmax agree. */
  top1Agreement: number;
  /** Mean KL(reference || candidate) in nats. */
  meanKl: number;
  maxKl: number;
  /** Largest |logit difference| over all positions and tokens. */
  maxLogitDiff: number;
  positions: number;
}

const argmax = (a: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
};

/** Runs both models over the same windows (one after the other: rows are kept as log-probs). */
export function compareModels(reference: Engine, candidate: Engine, tokens: readonly number[], o: WindowOptions): CompareResult {
  if (reference.config.vocabSize !== candidate.config.vocabSize) throw new RangeError(`compare: vocabularies differ (${reference.config.vocabSize} vs ${candidate.config.vocabSize})`);
  const ref: Float32Array[] = [];
  forEachPrediction(reference, tokens, o.ctx, o.stride, (row) => ref.push(row.slice()), (d, t) => o.onProgress?.(d, 2 * t));
  let agree = 0;
  let kl = 0;
  let maxKl = 0;
  let maxLogitDiff = 0;
  let i = 0;
  forEachPrediction(candidate, tokens, o.ctx, o.stride, (row) => {
    const r = ref[i++];
    const lp = logSoftmax(r);
    const lq = logSoftmax(row);
    if (argmax(r) === argmax(row)) agree++;
    let k = 0;
    for (let v = 0; v < lp.length; v++) {
      k += Math.exp(lp[v]) * (lp[v] - lq[v]);
      maxLogitDiff = Math.max(maxLogitDiff, Math.abs(r[v] - row[v]));
    }
    kl += k;
    maxKl = Math.max(maxKl, k);
  }, (d, t) => o.onProgress?.(t + d, 2 * t));
  return { top1Agreement: agree / i, meanKl: kl / i, maxKl, maxLogitDiff, positions: i };
}

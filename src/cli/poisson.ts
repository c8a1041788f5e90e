/**
 * Request arrivals for `llmrt bench serve`: a Poisson process of rate R requests/s,
 * i.e. exponential gaps of mean 1/R s between arrivals, from a seeded RNG so runs repeat.
 */
import { OptionError } from "../errors.js";
import { rng, unitDraw } from "./bench-stats.js";

/** Parses --request-rate: a positive number of requests per second, or "inf" (all at once). */
export function parseRate(v: string): number {
  if (v === "inf" || v === "Infinity") return Infinity;
  const r = Number(v);
  if (!(r > 0) || !Number.isFinite(r)) throw new OptionError("--request-rate", `wants requests per second > 0, or inf, got "${v}"`);
  return r;
}

/** Gaps in ms between successive arrivals at `rate` requests/s; all 0 when the rate is infinite. */
export function arrivalGaps(rate: number, seed: number): () => number {
  if (rate === Infinity) return () => 0;
  const draw = rng(seed);
  // inverse CDF of the exponential distribution
  return () => (-Math.log(unitDraw(draw)) / rate) * 1000;
}

/**
 * Llama 3 RoPE scaling as llama.cpp stores it: not as parameters but as a tensor
 * rope_freqs.weight [dim/2] holding, per rotated pair, the divisor of its inverse
 * frequency. These helpers go from parameters to factors (for writers) and back (for
 * readers), so the rest of llmrt only ever sees RopeScaling.
 */
import type { RopeScaling } from "./config.js";

type Llama3 = Extract<RopeScaling, { type: "llama3" }>;

/** Wavelength of each rotated pair before scaling: [dim/2]. */
function wavelengths(theta: number, dim: number): Float64Array {
  const w = new Float64Array(dim / 2);
  for (let i = 0; i < w.length; i++) w[i] = 2 * Math.PI * Math.pow(theta, (2 * i) / dim);
  return w;
}

/** Per-pair divisors of the inverse frequency: [dim/2]. Same rule as transformers' llama3 rope init. */
export function llama3FreqFactors(theta: number, dim: number, s: Llama3): Float32Array {
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  const wl = wavelengths(theta, dim);
  const out = new Float32Array(wl.length);
  for (let i = 0; i < wl.length; i++) {
    if (wl[i] > lowWavelen) out[i] = s.factor;
    else if (wl[i] < highWavelen) out[i] = 1;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wl[i] - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

/**
 * Recovers llama3 parameters that reproduce `factors` exactly (to float32 precision).
 * Only the ratios low/high to originalMaxPositionEmbeddings matter, so `origCtx` (the
 * GGUF's rope.scaling.original_context_length, else 8192) is taken as given.
 * Returns null when no llama3 rule fits.
 */
export function llama3FromFreqFactors(factors: Float32Array, theta: number, dim: number, origCtx = 8192): RopeScaling | null {
  if (factors.length !== dim / 2) return null;
  const factor = Math.max(...factors);
  if (close(factor, 1)) return factors.every((f) => close(f, 1)) ? { type: "none" } : null;
  // In x = 1/wavelength, the blend weight smooth(x) is linear: 0 at x_low, 1 at x_high.
  const wl = wavelengths(theta, dim);
  let xFull = 0; // largest x still fully scaled
  let xOne = Infinity; // smallest x left unscaled
  const blend: [number, number][] = [];
  for (let i = 0; i < factors.length; i++) {
    const x = 1 / wl[i];
    if (close(factors[i], factor)) xFull = Math.max(xFull, x);
    else if (close(factors[i], 1)) xOne = Math.min(xOne, x);
    else blend.push([x, (1 / factors[i] - 1 / factor) / (1 - 1 / factor)]);
  }
  if (xOne === Infinity) xOne = 2 / wl[wl.length - 1] + 1; // nothing unscaled: put the band past the last pair
  let xLow: number;
  let xHigh: number;
  if (blend.length >= 2) {
    // least-squares line through the blend points
    const n = blend.length;
    const mx = blend.reduce((a, [x]) => a + x, 0) / n;
    const ms = blend.reduce((a, [, s]) => a + s, 0) / n;
    const sxx = blend.reduce((a, [x]) => a + (x - mx) ** 2, 0);
    const sxs = blend.reduce((a, [x, s]) => a + (x - mx) * (s - ms), 0);
    const slope = sxs / sxx;
    if (!(slope > 0)) return null;
    xLow = mx - ms / slope;
    xHigh = xLow + 1 / slope;
  } else if (blend.length === 1) {
    const [xb, sb] = blend[0];
    const slope = 1.5 * Math.max(sb / (xb - xFull), (1 - sb) / (xOne - xb));
    xLow = xb - sb / slope;
    xHigh = xb + (1 - sb) / slope;
  } else {
    xLow = xFull + (xOne - xFull) / 3;
    xHigh = xFull + (2 * (xOne - xFull)) / 3;
  }
  if (!(xLow > 0 && xHigh > xLow)) return null;
  const s: Llama3 = {
    type: "llama3",
    factor,
    lowFreqFactor: origCtx * xLow,
    highFreqFactor: origCtx * xHigh,
    originalMaxPositionEmbeddings: origCtx,
  };
  const again = llama3FreqFactors(theta, dim, s);
  return again.every((f, i) => close(f, factors[i], 1e-3)) ? s : null;
}

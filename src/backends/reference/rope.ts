/**
 * Rotary position embedding frequencies, with linear and Llama-3 scaling.
 * The definition every backend follows.
 */
import type { RopeConfig } from "../../checkpoint/config.js";

/** Inverse frequency of each rotated pair: [rope.dim / 2]. */
export function ropeInvFreq(rope: RopeConfig): Float64Array {
  const half = rope.dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(rope.theta, (2 * i) / rope.dim);
  const s = rope.scaling;
  if (s.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] /= s.factor;
  } else if (s.type === "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth =
          (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}

/**
 * Index pairs rotated together within one head.
 * interleaved: (2i, 2i+1); neox ("rotate_half"): (i, i + dim/2).
 */
export function ropePair(rope: Pick<RopeConfig, "style" | "dim">, i: number): [number, number] {
  return rope.style === "interleaved" ? [2 * i, 2 * i + 1] : [i, i + rope.dim / 2];
}

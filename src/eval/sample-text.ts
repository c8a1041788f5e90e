/** Text sampled from a model itself (seeded, temperature 1): an evaluation text when the user gives none. */
import type { Engine } from "../engine/engine.js";
import { BlockPool } from "../runtime/kv-cache.js";
import { Sequence } from "../runtime/sequence.js";
import { buildStep } from "../runtime/step-builder.js";
import { logSoftmax } from "./windows.js";

/** mulberry32: small, seedable, the same stream on every machine. */
function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** prompt + n tokens sampled from e, one decode step per token after the prompt. */
export function sampleText(e: Engine, prompt: number[], n: number, seed: number): number[] {
  const rand = seededRandom(seed);
  const seq = new Sequence(0, prompt);
  new BlockPool(e.kv.numBlocks, e.kv.blockSize).reserve(seq, prompt.length + n);
  while (seq.numTokens < prompt.length + n) {
    const numNew = seq.numUncomputed;
    const logits = e.forward(buildStep([{ seq, numNew, wantLogits: true }], e.kv.blockSize));
    seq.numComputed += numNew;
    const lp = logSoftmax(logits.subarray(0, e.config.vocabSize));
    let u = rand();
    let next = lp.length - 1;
    for (let v = 0; v < lp.length; v++) {
      if ((u -= Math.exp(lp[v])) <= 0) {
        next = v;
        break;
      }
    }
    seq.tokens.push(next);
  }
  return seq.tokens;
}

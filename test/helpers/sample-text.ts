/** Text sampled from a model itself (seeded, temperature 1): what the accuracy gates score. */
import type { Engine } from "../../src/engine/engine.js";
import { logSoftmax } from "../../src/eval/windows.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";

/** prompt + n tokens sampled from e, one decode step per token after the prompt. */
export function sampleText(e: Engine, prompt: number[], n: number, seed: number): number[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

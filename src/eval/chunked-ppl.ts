/**
 * Perplexity for an engine built with few logit rows per step (e.g. the default
 * --max-logit-rows 16): each window is fed in chunks of at most `chunk` tokens into one
 * sequence, every row's logits kept, so the scores match one prefill of the window.
 */
import type { Engine } from "../engine/engine.js";
import { BlockPool } from "../runtime/kv-cache.js";
import { Sequence } from "../runtime/sequence.js";
import { buildStep } from "../runtime/step-builder.js";
import type { PerplexityResult } from "./metrics.js";
import { logSoftmax, planWindows } from "./windows.js";

export function chunkedPerplexity(engine: Engine, tokens: readonly number[], o: { ctx: number; stride: number; chunk: number }): PerplexityResult {
  if (!Number.isInteger(o.chunk) || o.chunk < 1) throw new RangeError(`chunkedPerplexity: chunk ${o.chunk} (need a positive integer)`);
  const V = engine.config.vocabSize;
  let nll = 0;
  let n = 0;
  for (const w of planWindows(tokens.length, o.ctx, o.stride)) {
    const seq = new Sequence(0, tokens.slice(w.begin, w.end));
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize).reserve(seq, w.end - w.begin);
    while (seq.numUncomputed > 0) {
      const start = seq.numComputed;
      const numNew = Math.min(o.chunk, seq.numUncomputed);
      const step = buildStep([{ seq, numNew, wantLogits: true }], engine.kv.blockSize);
      // row r (position start + r) predicts the token at start + r + 1; score targets >= firstTarget only
      const rows = Array.from({ length: numNew }, (_, r) => r).filter((r) => w.begin + start + r + 1 >= w.firstTarget && start + r + 1 < w.end - w.begin);
      step.logitRows = Int32Array.from(rows);
      const logits = engine.forward(step); // [rows, V]
      rows.forEach((r, i) => {
        nll -= logSoftmax(logits.subarray(i * V, (i + 1) * V))[tokens[w.begin + start + r + 1]];
        n++;
      });
      seq.numComputed += numNew;
    }
  }
  return { perplexity: Math.exp(nll / n), nll: nll / n, tokens: n };
}

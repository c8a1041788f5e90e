/**
 * Next-token distributions of a model over a token stream, in sliding windows: window w
 * covers tokens [w * stride, w * stride + ctx) and scores only the targets no earlier
 * window scored, so every token after the first is scored once, with up to ctx - stride
 * tokens of left context beyond the first window.
 */
import type { Engine } from "../engine/engine.js";
import { BlockPool } from "../runtime/kv-cache.js";
import { Sequence } from "../runtime/sequence.js";
import { buildStep } from "../runtime/step-builder.js";

export interface WindowPlan {
  /** Token positions [begin, end) the window feeds. */
  begin: number;
  end: number;
  /** First target position it scores (targets firstTarget .. end - 1). */
  firstTarget: number;
}

export function planWindows(numTokens: number, ctx: number, stride: number): WindowPlan[] {
  if (ctx < 2 || stride < 1 || stride > ctx) throw new RangeError(`windows: ctx ${ctx}, stride ${stride} (need ctx >= 2, 1 <= stride <= ctx)`);
  const out: WindowPlan[] = [];
  let scored = 1; // position 0 has no prediction
  for (let begin = 0; scored < numTokens; begin += stride) {
    const end = Math.min(begin + ctx, numTokens);
    if (end > scored) out.push({ begin, end, firstTarget: Math.max(scored, begin + 1) });
    scored = Math.max(scored, end);
  }
  return out;
}

/**
 * Runs each window as one prefill of a fresh sequence and hands `onRow` the logits
 * [vocab] that predict each target, with the target's position. One window at a time:
 * the engine needs maxBatchTokens and maxLogitRows >= ctx.
 */
export function forEachPrediction(engine: Engine, tokens: readonly number[], ctx: number, stride: number, onRow: (logits: Float32Array, target: number, pos: number) => void, onWindow?: (done: number, total: number) => void): void {
  const windows = planWindows(tokens.length, ctx, stride);
  const V = engine.config.vocabSize;
  windows.forEach((w, i) => {
    const ids = tokens.slice(w.begin, w.end);
    const seq = new Sequence(0, ids);
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize).reserve(seq, ids.length);
    const step = buildStep([{ seq, numNew: ids.length, wantLogits: true }], engine.kv.blockSize);
    // logits row r predicts the token after position firstTarget - 1 + r
    const first = w.firstTarget - 1 - w.begin;
    step.logitRows = Int32Array.from({ length: w.end - w.firstTarget }, (_, r) => first + r);
    const logits = engine.forward(step); // [rows, V]
    for (let r = 0; r < step.logitRows.length; r++) onRow(logits.subarray(r * V, (r + 1) * V), tokens[w.firstTarget + r], w.firstTarget + r);
    onWindow?.(i + 1, windows.length);
  });
}

/** Log-softmax of one logits row, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

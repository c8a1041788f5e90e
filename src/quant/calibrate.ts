/**
 * SmoothQuant calibration: runs the full-precision graph on the reference backend over
 * windows of calibration tokens and records, for every matmul input, the largest |x|
 * each column (input channel) reaches. The graph is bound with those inputs added to
 * its outputs, so the backend hands them back after each window: no hook in the backend.
 */
import type { WeightMap } from "../backends/backend.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import { colsOf, type Graph } from "../graph/ir.js";
import type { StepBatch } from "../graph/step-batch.js";

/** Activation name -> [cols] max |x| over every row of every window. */
export type ActivationRanges = Map<string, Float32Array>;

/** What the KV cache needs to know of the model. */
export interface CalibModel {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** The first `samples` consecutive windows of `seqLen` tokens (the last may be shorter). */
export function calibrationWindows(tokens: readonly number[], samples: number, seqLen: number): number[][] {
  const out: number[][] = [];
  for (let at = 0; at < tokens.length && out.length < samples; at += seqLen) out.push(tokens.slice(at, at + seqLen));
  return out;
}

const BLOCK = 16;

/** One sequence's prefill of `ids` into cache blocks 0, 1, ...; only the last row's logits. */
export function prefillStep(ids: readonly number[]): StepBatch {
  const n = ids.length;
  return {
    numTokens: n,
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from({ length: n }, (_, i) => i),
    seqStarts: Int32Array.of(0, n),
    contextLens: Int32Array.of(n),
    blockTables: [Int32Array.from({ length: Math.ceil(n / BLOCK) }, (_, i) => i)],
    slotMapping: Int32Array.from({ length: n }, (_, i) => i),
    logitRows: Int32Array.of(n - 1),
  };
}

/**
 * Per-column max |x| of each matmul's input over the windows. Inputs with "R" rows (after
 * gather_rows: the classifier's) see only each window's last token.
 */
export function collectActivationRanges(g: Graph, weights: WeightMap, model: CalibModel, windows: readonly (readonly number[])[], onWindow?: (done: number, total: number) => void): ActivationRanges {
  if (windows.length === 0 || windows.some((w) => w.length === 0)) throw new RangeError("calibration: no tokens to run");
  const xs = [...new Set(g.ops.flatMap((op) => (op.op === "matmul" ? [op.x] : [])))];
  const observed: Graph = { ...g, outputs: [...new Set([...g.outputs, ...xs])] };
  const longest = Math.max(...windows.map((w) => w.length));
  const kv = { numLayers: model.numLayers, numBlocks: Math.ceil(longest / BLOCK), blockSize: BLOCK, numKvHeads: model.numKvHeads, headDim: model.headDim };
  const bound = new ReferenceBackend().bind(observed, weights, kv);
  const ranges: ActivationRanges = new Map(xs.map((x) => [x, new Float32Array(colsOf(g, x))]));
  windows.forEach((w, i) => {
    const acts = bound.forward(prefillStep(w));
    for (const [x, max] of ranges) {
      const a = acts.get(x)!; // [rows, cols]
      for (let at = 0; at < a.length; at += max.length) {
        for (let c = 0; c < max.length; c++) max[c] = Math.max(max[c], Math.abs(a[at + c]));
      }
    }
    onWindow?.(i + 1, windows.length);
  });
  return ranges;
}

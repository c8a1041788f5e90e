/**
 * GPTQ's sequential calibration over a graph: linear layers are quantized in the order
 * the graph runs them, each from the inputs it sees while every layer before it already
 * runs quantized, so later layers correct the error of earlier ones (GPTQ's "true
 * sequential" order). One stage per distinct matmul input x, in graph order:
 *
 *   run the ops after the previous stage's input up to the op making x (the previous
 *   stage's matmuls, now quantized, among them) on the reference backend, window by
 *   window, from the activations earlier segments left; accumulate x's Hessian; quantize
 *   every matmul reading x from it.
 *
 * Every op runs once per window in all (the graph is cut into segments; each segment
 * starts from the cached activations it reads, handed to the backend beside the weights,
 * where it looks names up). Quantized weights run as their dequantized float32 values:
 * the reference matmul over packed weights computes the same products, only slower.
 */
import type { WeightMap } from "../backends/backend.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import { colsOf, opInputs, opLayer, opOutputs, type Graph } from "../graph/ir.js";
import type { CalibModel } from "./calibrate.js";
import { prefillStep } from "./calibrate.js";
import { HessianAccumulator } from "./hessian.js";
import { dequantize, type PackedMatrix } from "./packed.js";

const BLOCK = 16;

/** One group of matmuls sharing an input, quantized together. */
export interface SequentialStage {
  /** The activation the matmuls read. */
  x: string;
  /** Their weights, in graph order. */
  weights: string[];
}

/** The stages for the weights in `targets`, in the order the graph first reads each input. */
export function sequentialStages(g: Graph, targets: ReadonlySet<string>): SequentialStage[] {
  const byX = new Map<string, string[]>();
  for (const op of g.ops) {
    if (op.op !== "matmul" || !targets.has(op.w)) continue;
    byX.set(op.x, [...(byX.get(op.x) ?? []), op.w]);
  }
  return [...byX].map(([x, weights]) => ({ x, weights }));
}

/** Quantizes weight `name` ([rows, cols] float32 `w`) given its input's Hessian [cols, cols]. */
export type QuantizeWithHessian = (name: string, w: Float32Array, H: Float64Array, rows: number) => PackedMatrix;

/** Ops [from, to] as a graph that reads its live-in activations by name and outputs what later ops (or the stage) read. */
function segment(g: Graph, from: number, to: number, lastRead: Map<string, number>, x: string): { graph: Graph; liveIn: string[] } {
  const ops = g.ops.slice(from, to + 1);
  const made = new Set(ops.flatMap(opOutputs));
  const isAct = (n: string) => g.tensors.get(n)?.kind === "activation";
  const liveIn = [...new Set(ops.flatMap(opInputs))].filter((n) => isAct(n) && !made.has(n));
  const outputs = [...made].filter((n) => n === x || (lastRead.get(n) ?? -1) > to);
  // an attention op reads the cache its layer's kv_write fills in the same step: both must be in one segment
  for (const op of ops) {
    if (op.op === "attention" && !ops.some((w) => w.op === "kv_write" && w.layer === opLayer(op))) throw new Error(`gptq: layer ${opLayer(op)}'s attention and kv_write fall in different calibration segments`);
  }
  return { graph: { ...g, ops, outputs }, liveIn };
}

/**
 * Every weight in `targets` quantized in graph order by `quantizeOne`, each with the
 * Hessian of its input as the already quantized layers make it. Calibration steps score
 * every row (logit rows = all tokens), so an input gathered to the logit rows (the
 * classifier's) sees every token too.
 */
export function quantizeSequentially(g: Graph, weights: WeightMap, targets: ReadonlySet<string>, model: CalibModel, windows: readonly (readonly number[])[], quantizeOne: QuantizeWithHessian, onStage?: (done: number, total: number) => void): Map<string, PackedMatrix> {
  const packed = new Map<string, PackedMatrix>();
  walkStages(g, weights, sequentialStages(g, targets), model, windows, (stage, H, cols) => {
    const replaced = new Map<string, Float32Array>();
    for (const name of stage.weights) {
      const w = weights.get(name)!;
      const p = quantizeOne(name, w, H, w.length / cols);
      packed.set(name, p);
      replaced.set(name, dequantize(p));
    }
    return replaced;
  }, onStage);
  return packed;
}

/** The Hessian of each activation in `xs` as the full-precision graph makes it (one forward per window). */
export function collectHessians(g: Graph, weights: WeightMap, xs: readonly string[], model: CalibModel, windows: readonly (readonly number[])[]): Map<string, Float64Array> {
  const at = new Map<string, number>();
  g.ops.forEach((op, i) => opOutputs(op).forEach((o) => at.set(o, i)));
  const stages = [...new Set(xs)].sort((a, b) => at.get(a)! - at.get(b)!).map((x) => ({ x, weights: [] }));
  const out = new Map<string, Float64Array>();
  walkStages(g, weights, stages, model, windows, (stage, H) => void out.set(stage.x, H));
  return out;
}

/**
 * Runs the graph segment by segment up to each stage's input and hands `atStage` its
 * Hessian; the weights it returns (quantized ones, dequantized) replace theirs for the
 * segments after.
 */
function walkStages(g: Graph, weights: WeightMap, stages: readonly SequentialStage[], model: CalibModel, windows: readonly (readonly number[])[], atStage: (stage: SequentialStage, H: Float64Array, cols: number) => Map<string, Float32Array> | void, onStage?: (done: number, total: number) => void): void {
  if (windows.length === 0 || windows.some((w) => w.length === 0)) throw new RangeError("calibration: no tokens to run");
  const longest = Math.max(...windows.map((w) => w.length));
  const kv = { numLayers: model.numLayers, numBlocks: Math.ceil(longest / BLOCK), blockSize: BLOCK, numKvHeads: model.numKvHeads, headDim: model.headDim };
  const steps = windows.map((w) => ({ ...prefillStep(w), logitRows: Int32Array.from(w, (_, i) => i) }));
  const maker = new Map<string, number>();
  const lastRead = new Map<string, number>();
  g.ops.forEach((op, i) => {
    for (const o of opOutputs(op)) maker.set(o, i);
    for (const n of opInputs(op)) lastRead.set(n, i);
  });

  const env: WeightMap = new Map(weights); // the weights (replaced ones as replaced) and, per window, a segment's live-in activations
  const cached = windows.map(() => new Map<string, Float32Array>()); // per window: activations later segments read
  let from = 0;
  stages.forEach((stage, i) => {
    const to = maker.get(stage.x);
    if (to === undefined) throw new Error(`calibration: no op makes ${stage.x}`);
    if (to >= from) {
      const seg = segment(g, from, to, lastRead, stage.x);
      const bound = new ReferenceBackend().bind(seg.graph, env, kv);
      steps.forEach((step, w) => {
        for (const n of seg.liveIn) env.set(n, cached[w].get(n)!);
        for (const [n, v] of bound.forward(step)) cached[w].set(n, v);
        for (const n of seg.liveIn) env.delete(n);
      });
      for (const c of cached) for (const n of c.keys()) if (n !== stage.x && (lastRead.get(n) ?? -1) <= to) c.delete(n);
      from = to + 1;
    }
    const cols = colsOf(g, stage.x);
    const acc = new HessianAccumulator(cols);
    for (const c of cached) acc.add(c.get(stage.x)!); // [rows, cols]
    for (const [name, w] of atStage(stage, acc.hessian(), cols) ?? []) env.set(name, w);
    onStage?.(i + 1, stages.length);
  });
}

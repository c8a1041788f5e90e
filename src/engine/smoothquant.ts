/**
 * The w8a8 build step (llmrt build --quant w8a8): materializes the optimized graph's
 * weights in float32, calibrates on the calibration tokens (quant/calibrate.ts), migrates
 * scale into the weights (quant/smooth.ts) and quantizes the decoder's linear weights to
 * w8a8 (int8 per output channel; inputs int8 per token at run time).
 *
 * The classifier (the matmul that makes a graph output) stays in the engine dtype, as in
 * TensorRT-LLM's SmoothQuant: it is the most sensitive layer and runs once per logit row.
 * All weights are held in memory during this step.
 */
import type { WeightMap } from "../backends/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Graph } from "../graph/ir.js";
import { collectActivationRanges } from "../quant/calibrate.js";
import { packedFormatFor, type QuantOptions } from "../quant/options.js";
import type { PackedMatrix } from "../quant/packed.js";
import { quantize } from "../quant/quantize.js";
import { applySmoothing, planSmoothing, smoothingLog } from "../quant/smooth.js";
import { matmulOnlyWeights } from "./packed-weights.js";
import { materializeWeight, type TensorReader } from "./weights.js";
import { calibrationPlan, checkCalibration, type CalibrationData } from "./calibration.js";

export type { CalibrationData } from "./calibration.js";

export interface SmoothQuantBuild {
  /** The w8a8 weights, by name. */
  packed: Map<string, PackedMatrix>;
  /** Other weights whose values smoothing changed (norm weights, biases). */
  changed: Map<string, Float32Array>;
  /** For the build report. */
  summary: string;
  /** Alpha, samples, then one line per layer. */
  log: string[];
}

/** Weights of the matmuls that run W8A8: every matmul-only weight but the classifier's. */
export function w8a8Weights(g: Graph): Set<string> {
  const only = matmulOnlyWeights(g);
  return new Set(g.ops.flatMap((op) => (op.op === "matmul" && only.has(op.w) && !g.outputs.includes(op.out) ? [op.w] : [])));
}

export function smoothQuantWeights(g: Graph, config: ModelConfig, reader: TensorReader, q: QuantOptions, calibration: CalibrationData | undefined, onWindow?: (done: number, total: number) => void): SmoothQuantBuild {
  const calib = checkCalibration(calibration, config, "w8a8");
  const alpha = q.smoothAlpha!;
  const { windows, seqLen, described } = calibrationPlan(calib, config, q.calibSamples!, q.calibSeqLen!);
  const weights: WeightMap = new Map();
  for (const [name, d] of g.tensors) if (d.kind === "weight") weights.set(name, materializeWeight(g, name, reader));

  const ranges = collectActivationRanges(g, weights, config, windows, onWindow);
  const w8a8 = w8a8Weights(g);
  const plan = planSmoothing(g, w8a8);
  const smoothed = applySmoothing(g, weights, ranges, plan, alpha);
  const packed = new Map<string, PackedMatrix>();
  for (const name of w8a8) {
    const [rows, cols] = (g.tensors.get(name) as { shape: number[] }).shape;
    const { dtype, layout } = packedFormatFor(q, cols);
    packed.set(name, quantize(smoothed.weights.get(name)!, rows, cols, dtype, layout));
  }
  const changed = new Map([...smoothed.weights].filter(([n, v]) => !packed.has(n) && v !== weights.get(n)));

  const kinds = new Map<string, number>();
  for (const s of smoothed.stats) kinds.set(s.group.fold.kind, (kinds.get(s.group.fold.kind) ?? 0) + s.group.matmuls.length);
  const folds = [...kinds].map(([k, n]) => `${n} by ${k}`).join(", ");
  const smoothedCount = [...kinds.values()].reduce((a, b) => a + b, 0);
  const summary = `smoothquant alpha ${alpha}: ${smoothedCount} of ${w8a8.size} w8a8 matmuls smoothed (${folds || "none"}); calibrated on ${windows.length} x ${seqLen} tokens`;
  const log = [
    `smoothquant: alpha ${alpha}, ${described}`,
    ...smoothingLog(smoothed.stats, plan).map((l) => `smoothquant ${l}`),
  ];
  return { packed, changed, summary, log };
}

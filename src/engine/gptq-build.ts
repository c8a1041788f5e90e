/**
 * The calibrated weight-only build step (llmrt build --quant int4-wo|int8-wo --calib-data
 * FILE): materializes the optimized graph's weights in float32, searches activation-aware
 * scales per layer group and folds them (quant/awq.ts; measured to help on stories260K,
 * bench/RESULTS.md), then quantizes every linear weight the builder would pack with GPTQ
 * (quant/gptq.ts), layer after layer in graph order on the calibration tokens
 * (quant/sequential.ts); with --tune-steps, the packed weights' scales are then fitted end
 * to end to the fp32 model (quant/tune-scales.ts). The result is the same packed
 * format round-to-nearest gives, so every target runs it unchanged. Weights a checkpoint
 * already holds packed (GGUF blocks, AWQ / GPTQ releases) are left to the builder, which
 * keeps them as they are. All weights are held in memory during this step.
 */
import type { WeightMap } from "../backends/backend.js";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Checkpoint } from "../checkpoint/types.js";
import type { Graph } from "../graph/ir.js";
import { DEFAULT_GPTQ_DAMP, gptqQuantize, weightedError } from "../quant/gptq.js";
import { DEFAULT_TUNE_LR, packedFormatFor, type QuantOptions } from "../quant/options.js";
import { dequantize, type PackedMatrix } from "../quant/packed.js";
import { quantize, type GridDType } from "../quant/quantize.js";
import { collectHessians, quantizeSequentially } from "../quant/sequential.js";
import { searchAwqScales, type AwqChoice } from "../quant/awq.js";
import { planSmoothing } from "../quant/smooth.js";
import { calibrationPlan, checkCalibration, type CalibrationData } from "./calibration.js";
import { matmulOnlyWeights, packedFromCheckpoint } from "./packed-weights.js";
import { materializeWeight } from "./weights.js";
import { quantFor } from "../quant/overrides.js";
import { tuneScales } from "../quant/tune-scales.js";

export interface GptqBuild {
  /** The calibrated weights, by name. */
  packed: Map<string, PackedMatrix>;
  /** Other weights whose values the activation-aware scales changed (norm weights, biases). */
  changed: Map<string, Float32Array>;
  /** For the build report. */
  summary: string;
  /** Settings, then one line per layer, then the total. */
  log: string[];
}

/** One weight's relative output error ||X (W - Q)^T||^2 / ||X W^T||^2 on the calibration inputs, GPTQ's and round-to-nearest's. */
export interface LayerError {
  name: string;
  gptq: number;
  rtn: number;
}

/** Matmul-only weights not kept from the checkpoint's own packed blocks: what --quant would round. */
export function calibratedTargets(g: Graph, ckpt: Checkpoint): Set<string> {
  const out = new Set<string>();
  for (const name of matmulOnlyWeights(g)) {
    const d = g.tensors.get(name)!;
    if (d.kind !== "weight" || d.shape.length !== 2) continue;
    if (packedFromCheckpoint(d.source ?? { kind: "checkpoint", name }, ckpt)) continue;
    out.add(name);
  }
  return out;
}

export function gptqWeights(g: Graph, config: ModelConfig, ckpt: Checkpoint, q: QuantOptions, calibration: CalibrationData | undefined, onStage?: (done: number, total: number) => void): GptqBuild {
  const calib = checkCalibration(calibration, config, q.scheme);
  const { windows, seqLen, described } = calibrationPlan(calib, config, q.calibSamples!, q.calibSeqLen!);
  // per-tensor overrides (quant/overrides.ts): "fp32" ones are not quantized, the others get their own grid
  const targets = new Set([...calibratedTargets(g, ckpt)].filter((n) => quantFor(q, n)));
  const formatOf = (name: string, cols: number) => packedFormatFor(quantFor(q, name)!, cols);
  const original: WeightMap = new Map();
  for (const [name, d] of g.tensors) if (d.kind === "weight") original.set(name, materializeWeight(g, name, ckpt));
  // the scale search rounds on the base format's grid, also for weights an override gives another: the folds stay exact, only the search's target differs
  const roundTrip = (w: Float32Array, rows: number, cols: number) => {
    const { dtype, layout } = packedFormatFor(q, cols);
    return dequantize(quantize(w, rows, cols, dtype, layout));
  };
  let weights = original;
  let awq: AwqChoice[] = [];
  let unscaled: string[] = [];
  if (q.awqScales) {
    const plan = planSmoothing(g, targets);
    const hessians = collectHessians(g, original, plan.groups.map((gr) => gr.x), config, windows);
    ({ weights, choices: awq } = searchAwqScales(g, original, plan.groups, hessians, roundTrip));
    unscaled = plan.unsmoothed.map((u) => `${u.x} (${u.why})`);
  }
  const changed = new Map([...weights].filter(([n, v]) => !targets.has(n) && v !== original.get(n)));

  const errors: LayerError[] = [];
  let maxDamp = 0;
  let [symGroups, groups] = [0, 0];
  let packed = quantizeSequentially(g, weights, targets, config, windows, (name, w, H, rows) => {
    const cols = w.length / rows;
    const { dtype, layout } = formatOf(name, cols);
    const r = gptqQuantize(w, rows, cols, H, dtype as GridDType, layout, q.gptqDamp ?? DEFAULT_GPTQ_DAMP);
    maxDamp = Math.max(maxDamp, r.damp);
    symGroups += r.symGroups;
    groups += r.packed.scales.length;
    const size = weightedError(w, null, rows, cols, H); // the output's own size
    const rel = (values: Float32Array) => (size > 0 ? weightedError(w, values, rows, cols, H) / size : 0);
    errors.push({ name, gptq: rel(dequantize(r.packed)), rtn: rel(dequantize(quantize(w, rows, cols, dtype, layout))) });
    return r.packed;
  }, onStage);

  let tuned = "";
  if (q.tuneSteps) {
    const t0 = performance.now();
    const r = tuneScales(g, original, weights, packed, windows, { steps: q.tuneSteps, lr: q.tuneLr ?? DEFAULT_TUNE_LR });
    packed = r.packed;
    tuned = `scales tuned end to end, ${q.tuneSteps} steps: calibration KL(fp32 || quantized) ${fmt(r.before)} -> ${fmt(r.after)} on ${r.klWindows} of ${windows.length} windows (${((performance.now() - t0) / 1000).toFixed(1)} s)`;
  }
  const nOver = Object.keys(q.overrides ?? {}).length;
  const format = `${describeFormat(q)}${nOver ? ` (${nOver} per-tensor overrides)` : ""}`;
  const mean = (f: (e: LayerError) => number) => errors.reduce((s, e) => s + f(e), 0) / Math.max(1, errors.length);
  const [gMean, rMean] = [mean((e) => e.gptq), mean((e) => e.rtn)];
  const total = `mean relative output error ${fmt(gMean)} (round-to-nearest ${fmt(rMean)}${rMean > 0 ? `, ${(gMean / rMean).toFixed(2)}x` : ""}) over ${errors.length} matmuls`;
  const awqNote = q.awqScales ? `, activation-aware scales on ${awq.filter((c) => c.alpha > 0).length} of ${awq.length} layer groups` : "";
  const symNote = q.scheme === "int4-wo" && q.asym ? `, symmetric grid kept in ${symGroups} of ${groups} groups` : "";
  const summary = `gptq ${format} calibrated on ${windows.length} x ${seqLen} tokens${awqNote}${symNote}: ${total}${tuned ? `; ${tuned}` : ""}`;
  const log = [
    `gptq: ${format}, ${described}; dampening ${pct(maxDamp)} of mean diag(H); ${q.awqScales ? "activation-aware scales searched per layer group first; " : ""}layers quantized in graph order, each on the inputs the quantized layers before it give`,
    ...awqLog(awq).map((l) => `awq ${l}`),
    ...unscaled.map((u) => `awq unscaled ${u}`),
    ...errorLog(errors).map((l) => `gptq ${l}`),
    `gptq total: ${total}${q.awqScales ? " (rtn: round-to-nearest of the same scaled weights)" : ""}`,
    ...(tuned ? [`gptq ${tuned}`] : []),
  ];
  return { packed, changed, summary, log };
}

const fmt = (v: number) => v.toExponential(2);
const pct = (v: number) => `${+(100 * v).toPrecision(3)}%`;

function describeFormat(q: QuantOptions): string {
  return q.scheme === "int8-wo" ? "int8 per-channel" : `int4 g${q.groupSize}${q.asym ? " asym" : " sym"}`;
}

/** One line per layer: each group's alpha and its relative output error after round-to-nearest, scaled then unscaled. */
export function awqLog(choices: readonly AwqChoice[]): string[] {
  const byLayer = new Map<string, string[]>();
  for (const c of choices) {
    const key = c.group.layer === null ? "model" : `layer ${c.group.layer}`;
    const names = c.group.matmuls.map((m) => /^blk\.\d+\.(.+?)(\.weight)?$/.exec(m)?.[1] ?? m).join("+");
    byLayer.set(key, [...(byLayer.get(key) ?? []), `${names} (${c.group.fold.kind}) alpha ${c.alpha}: ${fmt(c.error)} (unscaled ${fmt(c.unscaled)})`]);
  }
  return [...byLayer].map(([k, v]) => `${k}: ${v.join(", ")}`);
}

/** One line per layer: each weight's relative output error, GPTQ's then round-to-nearest's. */
export function errorLog(errors: readonly LayerError[]): string[] {
  const byLayer = new Map<string, string[]>();
  for (const e of errors) {
    const m = /^blk\.(\d+)\.(.+?)(\.weight)?$/.exec(e.name);
    const key = m ? `layer ${m[1]}` : "model";
    const part = `${m ? m[2] : e.name} ${fmt(e.gptq)} (rtn ${fmt(e.rtn)})`;
    byLayer.set(key, [...(byLayer.get(key) ?? []), part]);
  }
  return [...byLayer].map(([k, v]) => `${k}: ${v.join(", ")}`);
}

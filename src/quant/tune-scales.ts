/**
 * End-to-end tuning of a calibrated build's scales (`--tune-steps`): with every weight's
 * integers fixed (GPTQ's), the group scales of the packed weights are fitted by Adam to
 * the FP32 model on the calibration windows. Layer-wise GPTQ sees each layer's own output
 * error only; this sees what the errors do together, at the logits. Loss per window:
 *
 *   KL(fp32 || quantized) of the next-token distributions, averaged over positions,
 *   + the residual stream's squared error to fp32's after each block half, relative to
 *     its mean square, averaged over those points (a dense target: it held the tuned
 *     scales nearer fp32's internals and generalized slightly better, bench/RESULTS.md).
 *
 * Scales are parametrized as s0 * exp(theta), so no step flips a sign and a step moves
 * each by a bounded factor; the step size decays linearly to 0. The packed format is
 * unchanged: only float32 scales move. (Tuning the RMSNorm weights too overfit 512
 * tokens badly, and was dropped.)
 */
import type { WeightMap } from "../backends/backend.js";
import { logSoftmax } from "../eval/windows.js";
import { colsOf, type Graph } from "../graph/ir.js";
import { GraphGrad } from "./graph-grad.js";
import { dequantize, type PackedMatrix } from "./packed.js";

export interface TuneOptions {
  /** Adam steps, one calibration window each, cycling through them. */
  steps: number;
  /** Adam's step size on log-scales at the first step. */
  lr: number;
}

export interface TuneResult {
  /** The packed weights with tuned scales (the others as given). */
  packed: Map<string, PackedMatrix>;
  /** KL(fp32 || quantized) on the first (up to) KL_WINDOWS calibration windows, mean over them, before and after. */
  before: number;
  after: number;
  /** Windows the KL was measured on. */
  klWindows: number;
}

/** One packed weight being tuned: its scales = base * exp(theta); ints [rows, cols] the fixed integer values (code - zero). */
interface Param {
  name: string;
  src: PackedMatrix;
  ints: Float32Array;
  theta: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** Windows the before / after KL is measured on: a forward pass each, twice (TinyLlama: ~9 s a pass). */
const KL_WINDOWS = 4;

/** Packed formats whose values are scale x integer per group (the K-quants' nested scales are not). */
const tunable = (p: PackedMatrix) => p.dtype === "int4" || p.dtype === "int8";

/**
 * Tunes the scales of the int8 / int4 weights in `packed` against the FP32 model on
 * `windows`. `fp32`: every weight of `g` dense at full precision (the teacher);
 * `weights`: the quantized model's other (dense) weights.
 */
export function tuneScales(g: Graph, fp32: WeightMap, weights: WeightMap, packed: ReadonlyMap<string, PackedMatrix>, windows: readonly (readonly number[])[], o: TuneOptions): TuneResult {
  const logits = g.outputs[0];
  const V = colsOf(g, logits);
  const stream = g.ops.flatMap((op) => (op.op === "add_rmsnorm" ? [op.sum] : op.op === "add" ? [op.out] : []));
  const teacher = new GraphGrad(g, fp32);
  const targets = windows.map((w) => {
    const tape = teacher.forward(w);
    const logProbs = logSoftmaxRows(tape.acts.get(logits)!, V);
    const hidden = stream.map((name) => {
      const h = tape.acts.get(name)!;
      return { name, h, meanSquare: h.reduce((a, b) => a + b * b, 0) / h.length };
    });
    return { logProbs, hidden };
  });

  const student: WeightMap = new Map(weights);
  const params: Param[] = [];
  for (const [name, p] of packed) {
    student.set(name, dequantize(p));
    if (!tunable(p)) continue;
    const n = p.scales.length;
    params.push({ name, src: p, ints: integersOf(p), theta: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) });
  }
  const scalesOf = (p: Param) => Float32Array.from(p.src.scales, (s, j) => s * Math.exp(p.theta[j]));
  const apply = (p: Param) => {
    const scale = scalesOf(p), w = new Float32Array(p.ints.length);
    eachGroup(p.src, (j, from, to) => {
      for (let i = from; i < to; i++) w[i] = scale[j] * p.ints[i];
    });
    student.set(p.name, w);
  };
  const model = new GraphGrad(g, student);
  const want = new Set(params.map((p) => p.name));
  const shown = windows.slice(0, KL_WINDOWS);
  const meanKl = () => shown.reduce((s, w, i) => s + klAndGrad(targets[i].logProbs, model.forward(w).acts.get(logits)!, V).kl, 0) / shown.length;

  const before = meanKl();
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  for (let step = 1; step <= o.steps; step++) {
    const wi = (step - 1) % windows.length;
    const tape = model.forward(windows[wi]);
    const dOut = new Map([[logits, klAndGrad(targets[wi].logProbs, tape.acts.get(logits)!, V).grad]]);
    for (const t of targets[wi].hidden) {
      const h = tape.acts.get(t.name)!, d = new Float32Array(h.length);
      const c = 2 / (h.length * t.meanSquare * stream.length);
      for (let i = 0; i < h.length; i++) d[i] = c * (h[i] - t.h[i]);
      dOut.set(t.name, d);
    }
    const grads = model.backward(tape, dOut, want);
    const lr = (o.lr * (o.steps - step + 1)) / o.steps;
    for (const p of params) {
      const dw = grads.get(p.name);
      if (!dw) continue;
      const w = student.get(p.name)!;
      // dL/dtheta_j = sum over group j's values of dL/dw * w
      eachGroup(p.src, (j, from, to) => {
        let d = 0;
        for (let i = from; i < to; i++) d += dw[i] * w[i];
        p.m[j] = b1 * p.m[j] + (1 - b1) * d;
        p.v[j] = b2 * p.v[j] + (1 - b2) * d * d;
        p.theta[j] -= (lr * (p.m[j] / (1 - b1 ** step))) / (Math.sqrt(p.v[j] / (1 - b2 ** step)) + eps);
      });
      apply(p);
    }
  }
  const after = meanKl();
  const out = new Map(packed);
  for (const p of params) out.set(p.name, { ...p.src, scales: scalesOf(p) });
  return { packed: out, before, after, klWindows: shown.length };
}

/** The fixed integers (code - zero, or the int8 value) of a packed int8 / int4 matrix, [rows, cols]: its values at unit scales. */
const integersOf = (p: PackedMatrix) => dequantize({ ...p, scales: new Float32Array(p.scales.length).fill(1) });

/** Calls f(group index, first value, end) for each group of a packed matrix's values [rows, cols]. */
function eachGroup(p: PackedMatrix, f: (j: number, from: number, to: number) => void): void {
  const { rows, cols } = p, gs = p.layout.groupSize, G = Math.ceil(cols / gs);
  for (let n = 0; n < rows; n++) for (let g = 0; g < G; g++) f(n * G + g, n * cols + g * gs, n * cols + Math.min(cols, (g + 1) * gs));
}

/** Log-softmax of each position's row of logits [T, V]. */
function logSoftmaxRows(logits: Float32Array, V: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let b = 0; b < logits.length; b += V) out.set(logSoftmax(logits.subarray(b, b + V)), b);
  return out;
}

/** KL(p || q) averaged over positions, p given as log-probabilities, and its gradient in q's logits: (q - p) / T. */
function klAndGrad(teacher: Float64Array, logits: Float32Array, V: number): { kl: number; grad: Float32Array } {
  const T = logits.length / V;
  const lq = logSoftmaxRows(logits, V);
  const grad = new Float32Array(logits.length);
  let kl = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = Math.exp(teacher[i]);
    kl += p * (teacher[i] - lq[i]);
    grad[i] = (Math.exp(lq[i]) - p) / T;
  }
  return { kl: kl / T, grad };
}

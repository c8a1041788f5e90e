/**
 * --quant auto's per-layer-group search, after the uniform candidates are measured.
 *
 * 1. Bases: of the weight-only candidates that miss the budget and are smaller than every
 *    one within it, the one with the fewest weight bytes and the one closest to the
 *    budget; the ladder from a base: the weight-only candidates with more bits per
 *    weight, then fp32.
 * 2. Sensitivity of each group (one linear weight) at each rung: KL(fp32 || model) on the
 *    evaluation text's first window when only that weight is rounded to nearest on that
 *    rung's grid, everything else fp32 (cheap, in memory, no engine written; a stand-in
 *    for GPTQ's error, whose mixes are then measured for real).
 * 3. Summed KL is taken as proportional to the log-perplexity increase, the factor fitted
 *    on the base (its measured increase over its summed KL); the greedy (quant/auto-mix.ts)
 *    promotes groups until the sum is within 80% of the budget so converted, then gives
 *    back promotions that still fit.
 * 4. The mix is built (GPTQ too where the candidates are calibrated) and measured like
 *    the uniform candidates: real perplexity, measured ms/token. Over budget, the factor
 *    is refitted on that measurement and the target tightened; well within it, refitted
 *    and bits given back once (kept only if still within). At most MAX_ROUNDS builds per base.
 */
import type { Checkpoint } from "../checkpoint/types.js";
import type { KvCacheShape, WeightMap } from "../backends/backend.js";
import { logSoftmax } from "../eval/windows.js";
import { BlockPool } from "../runtime/kv-cache.js";
import { Sequence } from "../runtime/sequence.js";
import { buildStep } from "../runtime/step-builder.js";
import { bitsPerWeight, describeMix, mixOverrides, predictedKl, promote, type MixProblem, type Rung } from "../quant/auto-mix.js";
import type { Candidate, CandidateResult } from "../quant/auto.js";
import { packedFormatFor, type QuantOptions } from "../quant/options.js";
import { formatLabel } from "../quant/overrides.js";
import { dequantize } from "../quant/packed.js";
import { quantize } from "../quant/quantize.js";
import { planEngine } from "./build.js";
import { Engine } from "./engine.js";
import { resolveBuildOptions } from "./options.js";
import { calibratedTargets } from "./gptq-build.js";
import { CpuBackend } from "../backends/cpu/backend.js";
import { materializeWeight } from "./weights.js";

const SENS_CTX = 128;
const SMALL_MODEL_PARAMS = 20e6;
const MAX_ROUNDS = 4;
/** The first target leaves this share of the budget as headroom for the additive model's error. */
const FIRST_MARGIN = 0.8;
/** A mix measured under this share of the budget is worth one cheaper try; its increase is floored at RELAX_FLOOR of the budget for the refit. */
const RELAX_BELOW = 0.5;
const RELAX_FLOOR = 0.1;
/** A relaxed target is at most this multiple of the passing mix's summed KL: the KL model is too rough for longer steps (measured on stories260K). */
const RELAX_STEP = 1.5;

export interface MixSearch {
  ckpt: Checkpoint;
  /** The evaluation text (its first SENS_CTX tokens score sensitivity). */
  tokens: number[];
  budget: number;
  /** The uniform candidates and their measured rows, index-aligned. */
  candidates: readonly Candidate[];
  results: readonly CandidateResult[];
  /** Builds with these quant options (the candidate's calibration flags added) and measures as the uniform candidates were. */
  tryBuild: (name: string, quant: QuantOptions) => CandidateResult;
  log: (line: string) => void;
}

const isWeightOnly = (c: Candidate) => c.quant?.scheme === "int8-wo" || c.quant?.scheme === "int4-wo";

/** The measured mixes (one row per verification build), in build order; none where no weight-only candidate misses the budget. */
export function searchMixes(s: MixSearch): CandidateResult[] {
  const usable = s.candidates.map((c, i) => ({ c, r: s.results[i] })).filter(({ c, r }) => isWeightOnly(c) && !r.error && r.increase !== undefined);
  // a base worth mixing from is over budget and smaller than every weight-only candidate within it (a mix only adds bytes to its base)
  const smallestWithin = Math.min(...usable.filter(({ r }) => r.withinBudget).map(({ r }) => r.weightBytes!));
  const failing = usable.filter(({ r }) => !r.withinBudget && r.weightBytes! < smallestWithin).sort((a, b) => a.r.weightBytes! - b.r.weightBytes!);
  if (!failing.length) {
    s.log("auto: mix: no weight-only candidate over budget is smaller than those within it; no per-group mix searched");
    return [];
  }
  // two starts: the cheapest candidate over budget, and the one closest to it (fewer promotions, a different trade)
  const closest = [...failing].sort((a, b) => a.r.increase! - b.r.increase!)[0];
  const bases = closest === failing[0] ? [failing[0]] : [failing[0], closest];
  const names = [...calibratedTargets(planEngine(s.ckpt.config, resolveBuildOptions(s.ckpt.config, {})).graph, s.ckpt)];
  if (!names.length) return [];
  const rungOf = (c: Candidate): Rung => {
    const format = { scheme: c.quant!.scheme, groupSize: c.quant!.groupSize, asym: c.quant!.asym };
    return { label: formatLabel(c.quant), format, bits: bitsPerWeight(format, s.ckpt.config.hiddenSize) }; // int8's per-row scale: hidden size stands for every matrix's width (ordering only)
  };
  const cheapest = rungOf(failing[0].c);
  const higher = usable.map(({ c }) => rungOf(c)).filter((r) => r.bits > cheapest.bits).sort((a, b) => a.bits - b.bits);
  const rungs = [cheapest, ...higher, { label: "fp32", format: "fp32" as const, bits: 32 }];
  s.log(`auto: mix: bases ${bases.map((b) => `${b.c.name} (+${(100 * b.r.increase!).toFixed(3)}%)`).join(", ")} (of the weight-only candidates over budget and smaller than those within it: the fewest bytes, the smallest increase); ladder ${rungs.map((r) => r.label).join(" < ")}; ${names.length} layer groups (one per linear weight)`);

  const t0 = performance.now();
  const { sensitivity, params, ctx } = measureSensitivity(s, names, rungs);
  s.log(`auto: mix: sensitivity = KL(fp32 || only that group rounded to nearest on the rung's grid) over ${ctx} tokens of the evaluation text, ${names.length * (rungs.length - 1)} forwards in ${((performance.now() - t0) / 1000).toFixed(1)} s; most sensitive at ${cheapest.label}: ${topSensitive(names, sensitivity, 4)}`);
  const rows: CandidateResult[] = [];
  for (const base of bases) {
    const from = rungs.findIndex((r) => r.label === formatLabel(base.c.quant));
    const problem: MixProblem = { params, rungs: rungs.slice(from), sensitivity: sensitivity.map((row) => row.slice(from)) };
    rows.push(...verifiedMixes(s, names, base, problem));
  }
  return rows;
}

/**
 * Greedy, build, measure. Over budget: refit on the measurement and tighten. Well within
 * it (under RELAX_BELOW of the budget): refit and give bits back once; if that mix
 * misses, the one before stands. The rows of every build.
 */
function verifiedMixes(s: MixSearch, names: readonly string[], base: { c: Candidate; r: CandidateResult }, problem: MixProblem): CandidateResult[] {
  const { rungs } = problem;
  let levels = names.map(() => 0);
  // log-perplexity increase per unit of summed KL (on text sampled from the fp32 model the expected log-perplexity increase is the KL itself)
  let perKl = Math.log1p(base.r.increase!) / Math.max(1e-12, predictedKl(problem, levels));
  let margin = FIRST_MARGIN;
  let relaxed = false;
  let built = "";
  const rows: CandidateResult[] = [];
  let cap = Infinity; // after a relax: at most RELAX_STEP x the KL of the mix that measured well within
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const target = Math.min(cap, (margin * Math.log1p(s.budget)) / perKl);
    levels = promote(problem, levels, target);
    if (levels.every((l) => l === rungs.length - 1)) {
      s.log(`auto: mix from ${rungs[0].label}: round ${round}: every group promoted to fp32; the uniform fp32 row stands for it`);
      break;
    }
    if (levels.join() === built || levels.every((l) => l === 0)) {
      s.log(`auto: mix from ${rungs[0].label}: round ${round}: the refit ${levels.every((l) => l === 0) ? "gives every promotion back (the uniform base's row stands)" : "moves no group"}; stop`);
      break;
    }
    built = levels.join();
    const predicted = predictedKl(problem, levels);
    const mix = describeMix(names, levels.map((l) => rungs[l].label));
    const quant = { ...base.c.quant!, overrides: mixOverrides(names, rungs, levels) };
    const r = { ...s.tryBuild(`mix${round} from ${rungs[0].label}`, quant), mix };
    rows.push(r);
    const got = r.increase === undefined ? "not measured" : `${r.increase >= 0 ? "+" : ""}${(100 * r.increase).toFixed(3)}%`;
    s.log(`auto: mix from ${rungs[0].label}: round ${round}: summed KL ${predicted.toExponential(2)} (target ${target.toExponential(2)}, predicted +${(100 * Math.expm1(predicted * perKl)).toFixed(3)}%), measured ${got}`);
    if (r.increase === undefined) break;
    // refit on the mix itself (a measured increase near 0 or below is floored: it says little about the slope)
    const fitted = Math.log1p(Math.max(r.increase, RELAX_FLOOR * s.budget)) / Math.max(1e-12, predicted);
    if (r.withinBudget) {
      if (relaxed || r.increase >= RELAX_BELOW * s.budget || fitted >= perKl) break;
      relaxed = true;
      perKl = fitted;
      cap = RELAX_STEP * predicted;
    } else {
      if (relaxed) break;
      perKl = Math.max(perKl, fitted);
      margin *= 0.7;
    }
  }
  return rows;
}

function topSensitive(names: readonly string[], sens: readonly (readonly number[])[], k: number): string {
  return names
    .map((n, g) => ({ n, v: sens[g][0] }))
    .sort((a, b) => b.v - a.v)
    .slice(0, k)
    .map((x) => `${x.n.replace(/\.weight$/, "")} ${x.v.toExponential(2)}`)
    .join(", ");
}

/** sensitivity[g][r]: the KL with only group g on rung r (0 on the fp32 rung); params[g]: its weight count; ctx: the tokens scored. */
export function measureSensitivity(s: Pick<MixSearch, "ckpt" | "tokens">, names: readonly string[], rungs: readonly Rung[]): { sensitivity: number[][]; params: number[]; ctx: number } {
  const tokens = s.tokens.slice(0, SENS_CTX);
  const ctx = tokens.length;
  // fp32 forwards on the cpu backend whatever the target (the reference backend's are slower on anything but toy models)
  const options = resolveBuildOptions(s.ckpt.config, { target: "cpu", maxSeqLen: ctx, maxBatchTokens: ctx, maxLogitRows: ctx, maxSeqs: 1 });
  const plan = planEngine(s.ckpt.config, options);
  const fp32: WeightMap = new Map();
  for (const [n, d] of plan.graph.tensors) if (d.kind === "weight") fp32.set(n, materializeWeight(plan.graph, n, s.ckpt));
  // one bind per forward: on a small model starting worker threads costs more than the forward (stories260K: ~45 ms a variant on 1 thread, ~250 ms on 2)
  const total = [...fp32.values()].reduce((n, w) => n + w.length, 0);
  const threads = total < SMALL_MODEL_PARAMS ? 1 : undefined;
  const V = s.ckpt.config.vocabSize;
  const kv: KvCacheShape = { numLayers: s.ckpt.config.numLayers, numBlocks: Math.ceil(ctx / 16), blockSize: 16, numKvHeads: s.ckpt.config.numKvHeads, headDim: s.ckpt.config.headDim, dtype: "f32" };
  const logProbs = (weights: WeightMap): Float64Array[] => {
    const e = new Engine(s.ckpt.config, plan.graph, new CpuBackend({ threads }).bind(plan.graph, weights, kv, plan.memory), ctx, { maxBatchTokens: ctx, maxLogitRows: ctx, maxSeqs: 1, origin: "auto mix sensitivity" });
    try {
      const seq = new Sequence(0, tokens);
      new BlockPool(kv.numBlocks, kv.blockSize).reserve(seq, ctx);
      const step = buildStep([{ seq, numNew: ctx, wantLogits: true }], kv.blockSize);
      step.logitRows = Int32Array.from({ length: ctx - 1 }, (_, r) => r); // the last row predicts past the text
      const logits = e.forward(step);
      return Array.from({ length: ctx - 1 }, (_, r) => logSoftmax(logits.subarray(r * V, (r + 1) * V)));
    } finally {
      e.close();
    }
  };
  const ref = logProbs(fp32);
  const kl = (q: Float64Array[]) => {
    let sum = 0;
    ref.forEach((p, r) => {
      for (let v = 0; v < V; v++) if (p[v] > -30) sum += Math.exp(p[v]) * (p[v] - q[r][v]);
    });
    return Math.max(0, sum / ref.length);
  };
  const sensitivity = names.map((n) => {
    const w = fp32.get(n)!;
    const [rows, cols] = (plan.graph.tensors.get(n) as { shape: number[] }).shape;
    return rungs.map((r) => {
      if (r.format === "fp32") return 0;
      const { dtype, layout } = packedFormatFor({ scheme: r.format.scheme, groupSize: r.format.groupSize, asym: r.format.asym }, cols);
      const weights = new Map(fp32).set(n, dequantize(quantize(w, rows, cols, dtype, layout)));
      return kl(logProbs(weights));
    });
  });
  const params = names.map((n) => fp32.get(n)!.length);
  return { sensitivity, params, ctx: ctx - 1 };
}

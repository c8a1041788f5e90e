/** `--quant`: which packed format the builder stores linear-layer weights in (w8a8: and how their inputs are quantized; weight-only: and how they are rounded). */
import { OptionError } from "../errors.js";
import type { PackedDType, PackedLayout } from "./packed.js";
import { resolveOverrides, type QuantOverrides } from "./overrides.js";

export type QuantScheme = "int8-wo" | "int4-wo" | "w8a8";
export const QUANT_SCHEMES: readonly QuantScheme[] = ["int8-wo", "int4-wo", "w8a8"];
/** SmoothQuant defaults (w8a8): the migration strength, and the calibration windows. */
export const DEFAULT_SMOOTH_ALPHA = 0.5;
export const DEFAULT_CALIB_SAMPLES = 32;
export const DEFAULT_CALIB_SEQ_LEN = 256;
/** --tune-lr's default: measured on stories260K (bench/RESULTS.md, "End-to-end scale tuning"). */
export const DEFAULT_TUNE_LR = 0.005;
/** Targets whose backend runs w8a8 matmuls (int8 activations too); others refuse the scheme. */
export const W8A8_TARGETS: readonly string[] = ["reference", "cpu"];
export const INT4_GROUP_SIZES = [32, 64, 128] as const;
export const DEFAULT_INT4_GROUP = 128;

/** Weight-only rounding: round-to-nearest, or GPTQ on calibration text (--calib-data). */
export type WeightRounding = "rtn" | "gptq";

export interface QuantOptions {
  scheme: QuantScheme;
  /** int8-wo / int4-wo: "gptq" calibrates (set by --calib-data); absent = round-to-nearest. */
  method?: WeightRounding;
  /** int4-wo: columns per scale (32, 64, 128); int8-wo: absent = per output channel. */
  groupSize?: number;
  /** int4-wo: a zero point per group. */
  asym?: boolean;
  /** w8a8: SmoothQuant's alpha in [0, 1]: s_j = max|X_j|^alpha / max|W_j|^(1 - alpha); higher moves more of the activations' range into the weights. */
  smoothAlpha?: number;
  /** gptq: search activation-aware scales per layer group first (AWQ-style, quant/awq.ts); default true. */
  awqScales?: boolean;
  /** gptq: dampening as a fraction of mean(diag H) (default DEFAULT_GPTQ_DAMP, 10%). */
  gptqDamp?: number;
  /** w8a8, gptq: calibration windows to run (fewer when the text is shorter). */
  calibSamples?: number;
  /** w8a8, gptq: tokens per calibration window. */
  calibSeqLen?: number;
  /** w8a8, gptq: the calibration text's file, for the record. */
  calibData?: string;
  /** gptq: steps of end-to-end scale tuning after GPTQ (quant/tune-scales.ts), one calibration window each; absent = none. */
  tuneSteps?: number;
  /** gptq with tuneSteps: the first step's size on log-scales (default DEFAULT_TUNE_LR). */
  tuneLr?: number;
  /** int8-wo / int4-wo: per-tensor formats instead of this one (quant/overrides.ts; --quant auto's mixes). */
  overrides?: QuantOverrides;
}

export function resolveQuant(q: Partial<QuantOptions> | undefined): QuantOptions | undefined {
  const r = resolveScheme(q);
  if (q?.overrides === undefined) return r;
  if (!r) throw new OptionError("quant.overrides", "needs a base --quant", "add --quant int8-wo or int4-wo");
  return { ...r, overrides: resolveOverrides(r, q.overrides, resolveScheme) };
}

function resolveScheme(q: Partial<QuantOptions> | undefined): QuantOptions | undefined {
  if (!q || q.scheme === undefined) {
    if (q?.groupSize !== undefined || q?.asym) throw new OptionError("--group-size", "needs --quant", "add --quant int4-wo");
    if (q && (q.smoothAlpha !== undefined || q.calibSamples !== undefined || q.calibData !== undefined)) {
      const flag = q.calibData !== undefined ? "--calib-data" : q.smoothAlpha !== undefined ? "--smooth-alpha" : "--calib-samples";
      throw new OptionError(flag, flag === "--smooth-alpha" ? "needs --quant w8a8" : "needs --quant w8a8 (SmoothQuant) or int4-wo / int8-wo (GPTQ)", "add --quant w8a8 or --quant int4-wo");
    }
    return undefined;
  }
  if (!QUANT_SCHEMES.includes(q.scheme)) throw new OptionError("--quant", `unknown scheme "${q.scheme}"`, `choose one of ${QUANT_SCHEMES.join(", ")}`);
  if (q.scheme === "w8a8") return resolveW8A8(q);
  if (q.smoothAlpha !== undefined) throw new OptionError("--smooth-alpha", `applies to --quant w8a8 only, not ${q.scheme}`);
  const calibrated = resolveRounding(q);
  if (q.scheme === "int8-wo") {
    if (q.asym) throw new OptionError("--int4-asym", "applies to int4-wo only");
    if (q.groupSize !== undefined) throw new OptionError("--group-size", "int8-wo has one scale per output channel", "drop --group-size, or use --quant int4-wo");
    return { scheme: "int8-wo", ...calibrated };
  }
  const groupSize = q.groupSize ?? DEFAULT_INT4_GROUP;
  if (!(INT4_GROUP_SIZES as readonly number[]).includes(groupSize)) throw new OptionError("--group-size", `${groupSize} is not supported`, `choose one of ${INT4_GROUP_SIZES.join(", ")}`);
  return { scheme: "int4-wo", groupSize, asym: q.asym ?? false, ...calibrated };
}

/** Weight-only: GPTQ's settings where calibration text is given (or method "gptq" asked), else nothing (round-to-nearest). */
function resolveRounding(q: Partial<QuantOptions>): Partial<QuantOptions> {
  if (q.method !== undefined && q.method !== "rtn" && q.method !== "gptq") throw new OptionError("method", `unknown weight rounding "${q.method}"`, "choose rtn or gptq");
  if (q.method === "rtn" || (q.method === undefined && q.calibData === undefined)) {
    if (q.gptqDamp !== undefined || q.awqScales !== undefined) throw new OptionError(q.gptqDamp !== undefined ? "gptqDamp" : "awqScales", "applies to GPTQ only", "pass calibration text (--calib-data)");
    if (q.tuneSteps !== undefined || q.tuneLr !== undefined) throw new OptionError(q.tuneSteps !== undefined ? "--tune-steps" : "--tune-lr", "tunes GPTQ's scales: needs calibration text", "add --calib-data FILE");
  }
  if (q.method === "rtn") {
    if (q.calibData !== undefined || q.calibSamples !== undefined) throw new OptionError(q.calibData !== undefined ? "--calib-data" : "--calib-samples", "round-to-nearest takes no calibration text");
    return {};
  }
  if (q.method !== "gptq" && q.calibData === undefined) {
    if (q.calibSamples !== undefined) throw new OptionError("--calib-samples", `needs --calib-data with --quant ${q.scheme}`, "add --calib-data FILE");
    return {};
  }
  const calibSamples = q.calibSamples ?? DEFAULT_CALIB_SAMPLES;
  const calibSeqLen = q.calibSeqLen ?? DEFAULT_CALIB_SEQ_LEN;
  for (const [flag, v] of [["--calib-samples", calibSamples], ["calibSeqLen", calibSeqLen]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new OptionError(flag, `must be a positive integer, got ${v}`);
  }
  if (q.gptqDamp !== undefined && !(q.gptqDamp > 0 && q.gptqDamp <= 10)) throw new OptionError("gptqDamp", `${q.gptqDamp} is outside (0, 10]`, "try 0.1 (10% of the Hessian's mean diagonal) or the paper's 0.01");
  return { method: "gptq", awqScales: q.awqScales ?? true, calibSamples, calibSeqLen, ...(q.gptqDamp !== undefined ? { gptqDamp: q.gptqDamp } : {}), ...(q.calibData !== undefined ? { calibData: q.calibData } : {}), ...resolveTuning(q) };
}

/** --tune-steps / --tune-lr of a GPTQ build, checked. */
function resolveTuning(q: Partial<QuantOptions>): Pick<QuantOptions, "tuneSteps" | "tuneLr"> {
  if (q.tuneSteps === undefined) {
    if (q.tuneLr !== undefined) throw new OptionError("--tune-lr", "sets the step size of --tune-steps", "add --tune-steps N, or drop --tune-lr");
    return {};
  }
  if (!Number.isInteger(q.tuneSteps) || q.tuneSteps < 1) throw new OptionError("--tune-steps", `must be a positive integer, got ${q.tuneSteps}`);
  const tuneLr = q.tuneLr ?? DEFAULT_TUNE_LR;
  if (!(tuneLr > 0 && tuneLr <= 1)) throw new OptionError("--tune-lr", `${tuneLr} is outside (0, 1]`, `try the default ${DEFAULT_TUNE_LR}`);
  return { tuneSteps: q.tuneSteps, tuneLr };
}

function resolveW8A8(q: Partial<QuantOptions>): QuantOptions {
  if (q.groupSize !== undefined) throw new OptionError("--group-size", "w8a8 has one weight scale per output channel and one activation scale per token", "drop --group-size");
  if (q.asym) throw new OptionError("--int4-asym", "applies to int4-wo only");
  const smoothAlpha = q.smoothAlpha ?? DEFAULT_SMOOTH_ALPHA;
  if (!(smoothAlpha >= 0 && smoothAlpha <= 1)) throw new OptionError("--smooth-alpha", `${smoothAlpha} is outside [0, 1]`, "try 0.5 (the SmoothQuant default) or 0.75 .. 0.85 for models with strong activation outliers");
  const calibSamples = q.calibSamples ?? DEFAULT_CALIB_SAMPLES;
  const calibSeqLen = q.calibSeqLen ?? DEFAULT_CALIB_SEQ_LEN;
  for (const [flag, v] of [["--calib-samples", calibSamples], ["calibSeqLen", calibSeqLen]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new OptionError(flag, `must be a positive integer, got ${v}`);
  }
  if (q.tuneSteps !== undefined || q.tuneLr !== undefined) throw new OptionError(q.tuneSteps !== undefined ? "--tune-steps" : "--tune-lr", "tunes weight-only int4 / int8 scales; w8a8 is calibrated by SmoothQuant", "use --quant int4-wo or int8-wo");
  return { scheme: "w8a8", smoothAlpha, calibSamples, calibSeqLen, ...(q.calibData !== undefined ? { calibData: q.calibData } : {}) };
}

/** The packed dtype and layout of a [rows, cols] weight under `q`. */
export function packedFormatFor(q: QuantOptions, cols: number): { dtype: PackedDType; layout: PackedLayout } {
  if (q.scheme === "int8-wo") return { dtype: "int8", layout: { groupSize: cols, asym: false, scale: "f32" } };
  if (q.scheme === "w8a8") return { dtype: "w8a8", layout: { groupSize: cols, asym: false, scale: "f32" } };
  return { dtype: "int4", layout: { groupSize: q.groupSize!, asym: q.asym ?? false, scale: "f32" } };
}

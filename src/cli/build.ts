/**
 * llmrt build: checkpoint -> optimized engine dir (engine.json + weights.bin + tokenizer
 * files). The log says what each pass did and what the engine holds.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { openModelSpec } from "../api/load-model.js";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { buildEngineDir } from "../engine/build.js";
import { ENGINE_FILE } from "../engine/format.js";
import { parseDTypeChoice, resolveBuildOptions } from "../engine/options.js";
import { resolveTarget, targetByName } from "../engine/targets.js";
import { buildLogLine, formatBytes } from "../engine/report.js";
import { OptionError } from "../errors.js";
import { buildProgressBar } from "../engine/build-progress.js";
import { DTYPE_HELP, floatOption, intOption } from "./options.js";
import { buildShardedEngineDir } from "../parallel/build.js";
import { checkParallel } from "../parallel/layout.js";
import { DEFAULT_CALIB_SAMPLES, DEFAULT_INT4_GROUP, DEFAULT_TUNE_LR, DEFAULT_SMOOTH_ALPHA, INT4_GROUP_SIZES, QUANT_SCHEMES, resolveQuant, type QuantScheme } from "../quant/options.js";
import { calibrationData, readCalibrationText } from "./calib-data.js";
import { DEFAULT_MAX_PPL_INCREASE, parseMaxPplIncrease } from "../quant/auto.js";
import { runAutoBuild } from "./build-auto.js";

export interface BuildFlags {
  model: string;
  output: string;
  dtype: string;
  target: string;
  maxBatchTokens: number;
  maxSeqs: number;
  maxSeqLen?: number;
  maxLogitRows?: number;
  gpuArch?: string;
  tp: number;
  pp: number;
  quant?: string;
  groupSize?: number;
  int4Asym?: boolean;
  calibData?: string;
  calibSamples?: number;
  smoothAlpha?: number;
  maxPplIncrease?: string;
  tuneSteps?: number;
  tuneLr?: number;
}

export function registerBuild(program: Command): void {
  program
    .command("build")
    .description("build an optimized engine dir from a checkpoint (fused graph, memory plan, packed weights)")
    .requiredOption("--model <path>", "checkpoint file or directory, Hugging Face id, or synthetic:NAME")
    .requiredOption("-o, --output <dir>", "engine directory to write")
    .option("--dtype <dtype>", DTYPE_HELP, "auto")
    .option("--target <name>", "backend whose layout to pack and whose kernels to include: auto (cuda where a GPU is usable, else cpu), cuda (no GPU needed to build), cpu, or reference", "auto")
    .option("--max-batch-tokens <n>", "most tokens per step", intOption("--max-batch-tokens", 1), 512)
    .option("--max-seqs <n>", "most sequences in flight", intOption("--max-seqs", 1), 16)
    .option("--max-seq-len <n>", "longest sequence (default: the model's context, at most 4096)", intOption("--max-seq-len", 2))
    .option("--max-logit-rows <n>", "most logit rows per step (default --max-seqs; raise for prompt logprobs)", intOption("--max-logit-rows", 1))
    .option("--tp <n>", "tensor-parallel ranks: each layer's heads, MLP and vocabulary split over them (one weights file per rank)", intOption("--tp", 1), 1)
    .option("--pp <n>", "pipeline stages: the layers split over them", intOption("--pp", 1), 1)
    .option("--gpu-arch <arch>", "--target cuda: GPU architecture to compile the kernels for (sm_80, sm_89, sm_90, ...; default sm_90), no GPU needed")
    .option("--quant <scheme>", `weight-only quantization of linear layers: ${QUANT_SCHEMES.join(", ")} (packed in the engine), or auto (measure every precision the target runs and per-layer-group mixes of them, keep the fastest within --max-ppl-increase)`)
    .option("--max-ppl-increase <pct>", `--quant auto: largest perplexity increase over fp32 accepted, e.g. 1% (default ${100 * DEFAULT_MAX_PPL_INCREASE}%)`)
    .option("--group-size <n>", `--quant int4-wo: columns per scale, ${INT4_GROUP_SIZES.join(" / ")} (default ${DEFAULT_INT4_GROUP})`, intOption("--group-size", 1))
    .option("--int4-asym", "--quant int4-wo: a zero point per group (asymmetric)")
    .option("--calib-data <file>", "calibration text (plain text like what the model will serve): --quant int4-wo / int8-wo quantize with GPTQ on it (without it: round-to-nearest); --quant w8a8 measures activation ranges on it; --quant auto: both, and it is the evaluation text")
    .option("--calib-samples <n>", `--calib-data: calibration windows of 256 tokens (default ${DEFAULT_CALIB_SAMPLES})`, intOption("--calib-samples", 1))
    .option("--tune-steps <n>", "--calib-data with --quant int4-wo / int8-wo: after GPTQ, tune the group scales end to end against the fp32 model's next-token distributions for n steps of one calibration window each (slow: forward and backward passes on the CPU; for small models)", intOption("--tune-steps", 1))
    .option("--tune-lr <lr>", `--tune-steps: the first step's size on log-scales (default ${DEFAULT_TUNE_LR})`, floatOption("--tune-lr"))
    .option("--smooth-alpha <a>", `--quant w8a8: SmoothQuant migration strength in [0, 1] (default ${DEFAULT_SMOOTH_ALPHA})`, floatOption("--smooth-alpha"))
    .action((flags: BuildFlags) => runBuild(flags));
}

/** Refuses to write into a non-empty dir that is not an engine; clears an old engine's manifest first. */
function prepareOutput(dir: string): void {
  if (!existsSync(dir)) return;
  const names = readdirSync(dir);
  if (names.length > 0 && !names.includes(ENGINE_FILE)) {
    throw new OptionError("-o", `${dir} exists and is not an engine dir (it holds ${names.slice(0, 4).join(", ")}${names.length > 4 ? ", ..." : ""})`, "pass a new or empty directory");
  }
  rmSync(join(dir, ENGINE_FILE), { force: true }); // a half-rebuilt dir must not look complete
}

async function runBuild(f: BuildFlags): Promise<void> {
  const chosen = resolveTarget(f.target);
  if (chosen.reason) console.error(`llmrt build: target ${chosen.target} (--target auto: ${chosen.reason})`);
  f = { ...f, target: chosen.target };
  const maxPplIncrease = parseMaxPplIncrease(f.maxPplIncrease, f.quant);
  if (f.quant === "auto") return runAutoBuild(f, maxPplIncrease, prepareOutput);
  const dtype = parseDTypeChoice(f.dtype);
  const quant = resolveQuant({ scheme: f.quant as QuantScheme | undefined, groupSize: f.groupSize, asym: f.int4Asym, smoothAlpha: f.smoothAlpha, calibSamples: f.calibSamples, calibData: f.calibData, tuneSteps: f.tuneSteps, tuneLr: f.tuneLr });
  if (quant?.scheme === "w8a8" && f.calibData === undefined) throw new OptionError("--calib-data", "--quant w8a8 needs calibration text", "pass --calib-data FILE: plain text like what the model will serve");
  const calibText = f.calibData !== undefined ? readCalibrationText(f.calibData) : undefined; // before any slow work
  prepareOutput(f.output);
  const t0 = performance.now();
  const { checkpoint, randomWeights } = await openModelSpec(f.model, { onProgress: cliProgressReporter() });
  const parallel = { tp: f.tp, pp: f.pp };
  const sharded = f.tp * f.pp > 1;
  if (sharded) checkParallel(checkpoint.config, parallel, f.target);
  if (sharded && f.quant) throw new OptionError("--quant", "sharded engines (--tp / --pp) do not pack weights yet", "build without --quant, or with --tp 1 --pp 1");
  const options = {
    dtype,
    target: f.target,
    maxBatchTokens: f.maxBatchTokens,
    maxSeqs: f.maxSeqs,
    maxSeqLen: f.maxSeqLen,
    maxLogitRows: f.maxLogitRows,
    gpuArch: f.gpuArch,
    quant,
  };
  let calibration;
  try {
    resolveBuildOptions(checkpoint.config, options, checkpoint); // option errors (e.g. w8a8 on a target that cannot run it) before calibrating
    calibration = calibText !== undefined ? await calibrationData(f.calibData!, calibText, checkpoint, randomWeights) : undefined;
  } catch (e) {
    checkpoint.close();
    throw e;
  }
  const onLog = (line: string) => console.error(`llmrt: ${line}`);
  if (calibration) onLog(`calibrating: ${calibration.tokens.length} tokens of ${f.calibData} through the fp32 model on the reference backend`);
  // target files first (the cuda target compiles its kernels): a failure leaves no half-built engine
  const files = await targetByName(f.target).buildFiles?.(resolveBuildOptions(checkpoint.config, options, checkpoint));
  const progress = buildProgressBar(`building ${f.output}`);
  try {
    const m = sharded ? buildShardedEngineDir(checkpoint, f.output, parallel, options, { onProgress: progress, files }) : buildEngineDir(checkpoint, f.output, options, { onProgress: progress, files, calibration, onLog });
    progress.stop();
    const s = (performance.now() - t0) / 1000;
    const weights = Object.entries(m.report.weightBytes).map(([dt, n]) => `${dt} ${formatBytes(n)}`).join(", ");
    console.error(`llmrt: built ${f.output} in ${s.toFixed(2)} s (target ${m.target}, dtype ${m.build.dtype}${dtype === "auto" ? " (auto)" : ""}, weights ${weights}, ${m.weights.tensors.length} tensors)`);
    console.error(`llmrt: ${buildLogLine(m.report)}`);
    if (sharded) console.error(`llmrt: sharded tp ${f.tp} x pp ${f.pp} = ${f.tp * f.pp} ranks (weights.rank0.bin .. weights.rank${f.tp * f.pp - 1}.bin; the line above is rank 0's); see llmrt inspect ${f.output}`);
  } finally {
    progress.stop();
    checkpoint.close();
  }
}

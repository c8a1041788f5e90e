/** llmrt build --quant auto: the flags checked, the evaluation text read, then buildAutoEngineDir. */
import { openModelSpec } from "../api/load-model.js";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { buildAutoEngineDir } from "../engine/auto-precision.js";
import { formatBytes } from "../engine/report.js";
import { OptionError } from "../errors.js";
import { resolveQuant } from "../quant/options.js";
import { AsciiTokenizer } from "../tokenizer/ascii.js";
import { loadTokenizer } from "../tokenizer/load.js";
import type { BuildFlags } from "./build.js";
import { calibrationData, readCalibrationText } from "./calib-data.js";

export async function runAutoBuild(f: BuildFlags, maxPplIncrease: number, prepareOutput: (dir: string) => void): Promise<void> {
  if (f.groupSize !== undefined || f.int4Asym) throw new OptionError(f.groupSize !== undefined ? "--group-size" : "--int4-asym", "--quant auto tries the int4 layouts itself", "drop the flag");
  if (f.tuneSteps !== undefined || f.tuneLr !== undefined) throw new OptionError(f.tuneSteps !== undefined ? "--tune-steps" : "--tune-lr", "--quant auto does not tune scales (each candidate would be trained)", "build the chosen format with --quant int4-wo --calib-data FILE --tune-steps N");
  if (f.dtype !== "auto" && f.dtype !== "fp32") throw new OptionError("--dtype", "--quant auto picks the weight dtype itself", "drop --dtype");
  if (f.tp * f.pp > 1) throw new OptionError("--quant", "auto builds one unsharded engine per candidate; sharded engines (--tp / --pp) do not pack weights yet", "build with --tp 1 --pp 1");
  if (f.calibData === undefined && (f.smoothAlpha !== undefined || f.calibSamples !== undefined)) {
    throw new OptionError(f.smoothAlpha !== undefined ? "--smooth-alpha" : "--calib-samples", "--quant auto tries w8a8 only with --calib-data", "add --calib-data FILE");
  }
  // the w8a8 candidate's settings, checked now rather than after minutes of building
  const w8a8 = f.calibData !== undefined ? resolveQuant({ scheme: "w8a8", smoothAlpha: f.smoothAlpha, calibSamples: f.calibSamples, calibData: f.calibData }) : undefined;
  const calibText = f.calibData !== undefined ? readCalibrationText(f.calibData) : undefined;
  prepareOutput(f.output);
  const t0 = performance.now();
  const { checkpoint, randomWeights } = await openModelSpec(f.model, { onProgress: cliProgressReporter() });
  const onLog = (line: string) => console.error(`llmrt: ${line}`);
  try {
    const calibration = calibText !== undefined ? await calibrationData(f.calibData!, calibText, checkpoint, randomWeights) : undefined;
    const tokenizer = randomWeights ? new AsciiTokenizer() : await loadTokenizer(checkpoint.tokenizer);
    const samplePrompt = tokenizer.bosId !== null ? [tokenizer.bosId] : tokenizer.encode("Once upon a time").slice(0, 8);
    const options = { target: f.target, maxBatchTokens: f.maxBatchTokens, maxSeqs: f.maxSeqs, maxSeqLen: f.maxSeqLen, maxLogitRows: f.maxLogitRows, gpuArch: f.gpuArch };
    const r = await buildAutoEngineDir(checkpoint, f.output, options, { maxPplIncrease, calibration, w8a8, samplePrompt: samplePrompt.length ? samplePrompt : [0], onLog });
    const s = (performance.now() - t0) / 1000;
    console.error(`llmrt: built ${f.output} in ${s.toFixed(2)} s (target ${r.manifest.target}, --quant auto chose ${r.results[r.chosen].name}, weights ${formatBytes(r.manifest.weights.bytes)}, ${r.manifest.weights.tensors.length} tensors)`);
  } finally {
    checkpoint.close();
  }
}

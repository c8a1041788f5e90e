/** The calibration text of a build (--calib-data), checked against the model before any slow work. */
import type { ModelConfig } from "../checkpoint/config.js";
import { OptionError } from "../errors.js";
import { calibrationWindows } from "../quant/calibrate.js";

/** Calibration text, tokenized with the model's tokenizer. */
export interface CalibrationData {
  tokens: readonly number[];
  /** Where it came from, for messages. */
  source: string;
}

/** `calib`, refused with a typed error when absent, empty or outside the vocabulary; `scheme` names the --quant that needs it. */
export function checkCalibration(calib: CalibrationData | undefined, config: ModelConfig, scheme: string): CalibrationData {
  if (!calib) throw new OptionError("--calib-data", `--quant ${scheme} needs calibration text`, "pass --calib-data FILE: plain text like what the model will serve");
  if (calib.tokens.length === 0) throw new OptionError("--calib-data", `${calib.source} gives no tokens`, "pass a file with some text in it");
  const bad = calib.tokens.find((t) => !(t >= 0 && t < config.vocabSize));
  if (bad !== undefined) throw new OptionError("--calib-data", `${calib.source} tokenizes to id ${bad}, outside the model's vocabulary of ${config.vocabSize}`, "tokenize with the model's own tokenizer");
  return calib;
}

/** The windows to run and the log's description of them. */
export function calibrationPlan(calib: CalibrationData, config: ModelConfig, samples: number, seqLen: number): { windows: number[][]; seqLen: number; described: string } {
  const len = Math.min(seqLen, config.maxPositionEmbeddings);
  const windows = calibrationWindows(calib.tokens, samples, len);
  const used = windows.reduce((n, w) => n + w.length, 0);
  const fewer = windows.length < samples ? `; the text holds fewer than the ${samples} samples asked for` : "";
  return { windows, seqLen: len, described: `${windows.length} calibration samples of up to ${len} tokens (${used} of ${calib.tokens.length} tokens of ${calib.source}${fewer})` };
}

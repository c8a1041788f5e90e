/** --calib-data: the calibration text of llmrt build (--quant w8a8, and GPTQ for --quant int4-wo / int8-wo), checked and tokenized with the model's tokenizer. */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { Checkpoint } from "../checkpoint/types.js";
import type { CalibrationData } from "../engine/smoothquant.js";
import { OptionError } from "../errors.js";
import { AsciiTokenizer } from "../tokenizer/ascii.js";
import { loadTokenizer } from "../tokenizer/load.js";

const HINT = "pass a UTF-8 text file like what the model will serve (a few thousand tokens is enough)";

/** The file's text; typed errors for a missing, non-file or empty file. */
export function readCalibrationText(file: string): string {
  if (!existsSync(file)) throw new OptionError("--calib-data", `${file}: no such file`, HINT);
  if (!statSync(file).isFile()) throw new OptionError("--calib-data", `${file} is not a file`, HINT);
  const text = readFileSync(file, "utf8");
  if (text.trim() === "") throw new OptionError("--calib-data", `${file} is empty`, HINT);
  return text;
}

/** The text as the model's tokens (random-weight models use the ASCII tokenizer, as loadModel does). */
export async function calibrationData(file: string, text: string, ckpt: Checkpoint, randomWeights: boolean): Promise<CalibrationData> {
  const tokenizer = randomWeights ? new AsciiTokenizer() : await loadTokenizer(ckpt.tokenizer);
  return { tokens: tokenizer.encode(text), source: file };
}

/** Parsers for CLI options, with errors that name the flag, and the options several commands share. */
import { InvalidArgumentError, Option, type Command } from "commander";
import { DTYPE_CHOICES, parseDTypeChoice } from "../engine/options.js";
import { describeTarget, type TargetChoice } from "../engine/targets.js";

export function intOption(flag: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} wants an integer >= ${min}, got "${v}"`);
    return n;
  };
}

export function floatOption(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} wants a number, got "${v}"`);
    return n;
  };
}

export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

export const DTYPE_HELP = `weight storage: ${DTYPE_CHOICES.join(", ")} (arithmetic is fp32, except bf16 / fp16 engines on cuda). auto: on --target cuda the checkpoint's own bf16 / fp16, bf16 for a quantized one, fp32 for an fp32 one; fp32 on the other targets (16-bit matrices stay 16-bit there anyway)`;

/** --dtype for the commands that build a checkpoint into the engine cache (an engine dir is used as built). */
export function dtypeOption(): Option {
  return new Option("--dtype <dtype>", `${DTYPE_HELP}; an engine dir is used as built`).argParser(parseDTypeChoice).default("auto");
}

export const TARGET_HELP = "backend to build the engine for and run on: auto (cuda where a GPU is usable, else cpu), cuda, cpu, or reference (plain TypeScript, slow); an engine dir runs on the target it was built for";

/** One stderr line on where the engine runs, when auto chose it (named targets need no word). */
export function reportTarget(t: TargetChoice): void {
  if (t.reason) console.error(`llmrt: running on ${describeTarget(t)}`);
}

/** The sampling filters chat and generate share (their defaults live in the sampler). */
export function samplingFilterOptions(cmd: Command): Command {
  return cmd
    .option("--top-k <k>", "keep the k most likely tokens (0 = off)", intOption("--top-k"))
    .option("--top-p <p>", "nucleus sampling mass (1 = off)", floatOption("--top-p"))
    .option("--min-p <p>", "drop tokens below p x the top probability (0 = off)", floatOption("--min-p"))
    .option("--repetition-penalty <r>", "penalize tokens already seen (1 = off)", floatOption("--repetition-penalty"));
}

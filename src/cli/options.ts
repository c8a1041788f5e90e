/** Parsers for numeric CLI options, with errors that name the flag. */
import { InvalidArgumentError, type Command } from "commander";

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

/** The sampling filters chat and generate share (their defaults live in the sampler). */
export function samplingFilterOptions(cmd: Command): Command {
  return cmd
    .option("--top-k <k>", "keep the k most likely tokens (0 = off)", intOption("--top-k"))
    .option("--top-p <p>", "nucleus sampling mass (1 = off)", floatOption("--top-p"))
    .option("--min-p <p>", "drop tokens below p x the top probability (0 = off)", floatOption("--min-p"))
    .option("--repetition-penalty <r>", "penalize tokens already seen (1 = off)", floatOption("--repetition-penalty"));
}

/** Parsers for numeric CLI options, with errors that name the flag. */
import { InvalidArgumentError } from "commander";

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

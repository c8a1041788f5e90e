/** One line describing where a benchmark ran, printed by every bench: the CLI's line and the date. */
import { machineLine as cliMachineLine } from "../src/cli/machine.js";

export function machineLine(): string {
  return `${cliMachineLine()}, ${new Date().toISOString().slice(0, 10)}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

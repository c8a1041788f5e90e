/** One line describing where a benchmark ran, printed by every bench. */
import { cpus, totalmem } from "node:os";

export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown CPU"}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

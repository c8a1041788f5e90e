/** Where a benchmark ran, in one line (bench/machine.ts adds the date). */
import { cpus, totalmem } from "node:os";

export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown CPU"}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
}

/** Where a benchmark ran, in one line: as bench/machine.ts prints it, for code under src/ (which cannot import bench/). */
import { cpus, totalmem } from "node:os";

export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown CPU"}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`;
}

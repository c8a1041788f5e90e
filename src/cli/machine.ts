/** Where a benchmark ran, in one line (bench/machine.ts adds the date). */
import { cpus, totalmem } from "node:os";
import { systemBlas } from "../backends/cpu/blas.js";

export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown CPU"}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${blasLine()}`;
}

/** The CPU backend's BLAS for big matmuls, as the CPU target would load it. */
function blasLine(): string {
  try {
    const blas = systemBlas();
    if (!blas) return "BLAS: none (WASM kernels only)";
    const core = process.env.OPENBLAS_CORETYPE;
    return `BLAS: ${blas.description}${core ? ` [OPENBLAS_CORETYPE=${core}]` : ""}`;
  } catch (e) {
    return `BLAS: unusable (${(e as Error).message.split("\n")[0]})`;
  }
}

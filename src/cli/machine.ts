/** Where a benchmark ran, in one line (bench/machine.ts adds the date). */
import { existsSync, readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { systemBlas } from "../backends/cpu/blas.js";

export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? "unknown CPU"}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${blasLine()}, ${hugePagesLine()}`;
}

/** Whether the CPU backend's memory can get transparent huge pages (it asks where THP is not "never"). */
function hugePagesLine(): string {
  const f = "/sys/kernel/mm/transparent_hugepage/enabled";
  if (process.env.LLMRT_HUGEPAGES === "0") return "huge pages: off (LLMRT_HUGEPAGES=0)";
  if (process.platform !== "linux" || !existsSync(f)) return "huge pages: none";
  const mode = /\[(\w+)\]/.exec(readFileSync(f, "utf8"))?.[1] ?? "unknown";
  return mode === "never" ? "huge pages: none (THP never)" : `huge pages: asked (THP ${mode})`;
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

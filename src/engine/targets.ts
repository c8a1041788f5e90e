/**
 * Build targets: the backends an engine can be built for. A target owns the layout its
 * weights are packed in; an engine built for one target does not load on another.
 */
import type { Backend } from "../backends/backend.js";
import { CpuBackend } from "../backends/cpu/backend.js";
import { CPU_LAYOUT } from "../backends/cpu/layout.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import { OptionError } from "../errors.js";

export interface Target {
  name: string;
  description: string;
  /** How weights.bin lays out each tensor for this target. */
  layout: string;
  createBackend(): Backend;
}

export const TARGETS: Record<string, Target> = {
  reference: {
    name: "reference",
    description: "plain TypeScript, the definition of every op (slow, exact)",
    layout: "row-major [out, in]; fp16/bf16 widened to fp32 at load",
    createBackend: () => new ReferenceBackend(),
  },
  cpu: {
    name: "cpu",
    description: "WebAssembly SIMD kernels on a pool of threads (--threads, default all cores)",
    layout: CPU_LAYOUT,
    createBackend: () => new CpuBackend(),
  },
};

export function targetByName(name: string): Target {
  const t = TARGETS[name];
  if (!t) throw new OptionError("--target", `unknown target "${name}"`, `choose one of: ${Object.keys(TARGETS).join(", ")}`);
  return t;
}

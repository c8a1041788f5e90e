/**
 * The optimizing pipeline: the passes in order, each checked to leave a well-formed
 * graph, with a record of what each did for the build log and `llmrt inspect`.
 */
import type { Graph } from "../ir.js";
import { validateGraph } from "../validate.js";
import { eliminateDeadPass } from "./eliminate-dead.js";
import { foldConstantsPass } from "./fold-constants.js";
import { fuseAddRmsnormPass } from "./fuse-add-rmsnorm.js";
import { fuseGateUpPass } from "./fuse-gate-up.js";
import { fuseQkvPass } from "./fuse-qkv.js";
import { fuseRopeAttentionPass } from "./fuse-rope-attention.js";
import { fuseSiluMulPass } from "./fuse-silu-mul.js";
import type { Pass } from "./pass.js";

/** Order matters: SiLU*mul and RoPE+attention fuse the slices that gate/up and QKV fusion leave. */
export const DEFAULT_PASSES: readonly Pass[] = [
  foldConstantsPass,
  fuseQkvPass,
  fuseGateUpPass,
  fuseAddRmsnormPass,
  fuseSiluMulPass,
  fuseRopeAttentionPass,
  eliminateDeadPass,
];

export interface PassRecord {
  pass: string;
  /** Set for fusion passes: what they fuse ("QKV"). */
  label?: string;
  /** E.g. "fused 5 QKV"; empty if the pass changed nothing. */
  summary: string;
  count: number;
  opsBefore: number;
  opsAfter: number;
  ms: number;
}

export function runPasses(graph: Graph, passes: readonly Pass[] = DEFAULT_PASSES): { graph: Graph; log: PassRecord[] } {
  const log: PassRecord[] = [];
  let g = graph;
  for (const p of passes) {
    const t0 = performance.now();
    const next = p.run(g);
    validateGraph(next);
    log.push({ pass: p.name, label: p.label, summary: p.describe(g, next), count: p.count(g, next), opsBefore: g.ops.length, opsAfter: next.ops.length, ms: performance.now() - t0 });
    g = next;
  }
  return { graph: g, log };
}

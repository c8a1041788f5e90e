/**
 * The graph work of a sharded build, per rank: the model's plain graph, this rank's
 * tensor-parallel share, its pipeline stage, then the usual fusion passes and memory
 * plan. No weights are read here (this is also what `llmrt inspect` shows).
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { planEngine, type EnginePlan } from "../engine/build.js";
import type { BuildOptions } from "../engine/options.js";
import { isCollective, type Graph } from "../graph/ir.js";
import { DEFAULT_PASSES } from "../graph/passes/pipeline.js";
import { pipelineStagePass } from "../graph/passes/pipeline-stage.js";
import { shardPass } from "../graph/passes/shard.js";
import { kvHeadsPerRank, placeOf, stageSpec, worldSize, type ParallelConfig, type RankPlace } from "./layout.js";

export interface RankPlan extends EnginePlan, RankPlace {
  layers: [number, number];
  kvHeads: number;
}

export function planRank(config: ModelConfig, options: BuildOptions, p: ParallelConfig, rank: number): RankPlan {
  const place = placeOf(p, rank);
  const stage = stageSpec(p, config.numLayers, rank);
  const passes = [shardPass(p.tp, place.tpRank), ...(p.pp > 1 ? [pipelineStagePass(stage)] : []), ...DEFAULT_PASSES];
  return { ...planEngine(config, options, passes), ...place, layers: stage.layers, kvHeads: kvHeadsPerRank(config, p.tp) };
}

export function planRanks(config: ModelConfig, options: BuildOptions, p: ParallelConfig): RankPlan[] {
  return Array.from({ length: worldSize(p) }, (_, r) => planRank(config, options, p, r));
}

/** One collective of a rank's step: its payload per row of the tensor it moves. */
export interface CommEntry {
  op: "all_reduce" | "all_gather" | "send" | "recv";
  tensor: string;
  /** "T": one row per token of the step; "R": per logit row. */
  rows: "T" | "R" | "1";
  /** Bytes per row this rank contributes (all_gather: its part) or moves. */
  bytesPerRow: number;
  peer?: number;
}

/** The collectives a rank runs each step, in order. */
export function commOf(g: Graph): CommEntry[] {
  const out: CommEntry[] = [];
  for (const op of g.ops) {
    if (!isCollective(op)) continue;
    const name = op.op === "recv" ? op.out : op.x;
    const d = g.tensors.get(name);
    if (!d || d.kind !== "activation") continue;
    const e: CommEntry = { op: op.op, tensor: name, rows: d.rows, bytesPerRow: d.cols * 4 };
    if (op.op === "send" || op.op === "recv") e.peer = op.peer;
    out.push(e);
  }
  return out;
}

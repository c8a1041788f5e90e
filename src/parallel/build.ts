/**
 * Builds a sharded engine dir: per rank, its plan (plan.ts) and its weights, sliced,
 * converted and written to weights.rank<R>.bin; one engine.json (format version 2)
 * with every rank's graph, memory plan and tensors; the tokenizer files once.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Checkpoint } from "../checkpoint/types.js";
import type { BuildHooks } from "../engine/build.js";
import { ENGINE_FORMAT, SHARDED_ENGINE_FORMAT_VERSION, WeightsWriter, WEIGHT_ALIGNMENT, serializeGraph, writeManifest, type EngineManifest, type RankManifest } from "../engine/format.js";
import { resolveBuildOptions, type BuildRequest } from "../engine/options.js";
import { targetByName } from "../engine/targets.js";
import { writeTokenizerFiles } from "../engine/tokenizer-files.js";
import { encodeWeight, materializeWeight, storageDType } from "../engine/weights.js";
import { checkParallel, type ParallelConfig } from "./layout.js";
import { planRanks, type RankPlan } from "./plan.js";

export const rankWeightsFile = (rank: number) => `weights.rank${rank}.bin`;

function writeRank(ckpt: Checkpoint, dir: string, plan: RankPlan, progress: { done: number; total: number }, hooks: BuildHooks): RankManifest {
  const file = rankWeightsFile(plan.rank);
  const writer = new WeightsWriter(join(dir, file));
  let bytes: number;
  try {
    for (const [name, d] of plan.graph.tensors) {
      if (d.kind !== "weight") continue;
      const dtype = storageDType(d.shape, plan.options.dtype);
      const data = encodeWeight(materializeWeight(plan.graph, name, ckpt), dtype);
      writer.add(name, dtype, d.shape, data);
      progress.done += data.length;
      hooks.onProgress?.({ ...progress, tensor: `rank ${plan.rank}: ${name}` });
    }
  } finally {
    bytes = writer.close();
  }
  return {
    rank: plan.rank,
    stage: plan.stage,
    tpRank: plan.tpRank,
    layers: plan.layers,
    kvHeads: plan.kvHeads,
    graph: serializeGraph(plan.graph),
    memoryPlan: plan.memory,
    report: plan.report,
    weights: { file, bytes, alignment: WEIGHT_ALIGNMENT, tensors: writer.entries },
  };
}

/** Builds the tp x pp engine for `ckpt` into `dir`; returns its manifest. */
export function buildShardedEngineDir(ckpt: Checkpoint, dir: string, p: ParallelConfig, opts: BuildRequest = {}, hooks: BuildHooks = {}): EngineManifest {
  const options = resolveBuildOptions(ckpt.config, opts, ckpt);
  checkParallel(ckpt.config, p, options.target);
  const target = targetByName(options.target);
  const plans = planRanks(ckpt.config, options, p);
  mkdirSync(dir, { recursive: true });
  const total = plans.reduce((n, pl) => n + Object.values(pl.report.weightBytes).reduce((a, b) => a + b, 0), 0);
  const progress = { done: 0, total };
  const ranks = plans.map((pl) => writeRank(ckpt, dir, pl, progress, hooks));
  const r0 = ranks[0];
  const manifest: EngineManifest = {
    format: ENGINE_FORMAT,
    version: SHARDED_ENGINE_FORMAT_VERSION,
    target: target.name,
    layout: target.layout,
    builtAt: new Date().toISOString(),
    source: { format: ckpt.format, path: ckpt.path, randomWeights: ckpt.format === "synthetic" },
    model: ckpt.config,
    build: options,
    graph: r0.graph,
    memoryPlan: r0.memoryPlan,
    report: r0.report,
    tokenizer: writeTokenizerFiles(ckpt, dir),
    weights: r0.weights,
    parallel: { tp: p.tp, pp: p.pp, ranks },
  };
  for (const [rel, data] of hooks.files ?? []) {
    // the target's files (the cuda target's cubins), shared by every rank
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), data);
  }
  writeManifest(dir, manifest); // last: a dir without engine.json is an unfinished build
  return manifest;
}

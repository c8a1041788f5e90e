/**
 * How ranks are laid out: tp ranks per pipeline stage, pp stages, rank = stage * tp +
 * tpRank (stage-major, as Megatron and TensorRT-LLM number them). Which layers each
 * stage holds, whom each rank talks to, and whether a model splits this way at all.
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { OptionError } from "../errors.js";
import type { StageSpec } from "../graph/passes/pipeline-stage.js";

export interface ParallelConfig {
  /** Tensor-parallel ranks per stage. */
  tp: number;
  /** Pipeline stages. */
  pp: number;
}

export interface RankPlace {
  rank: number;
  stage: number;
  tpRank: number;
}

export function worldSize(p: ParallelConfig): number {
  return p.tp * p.pp;
}

export function placeOf(p: ParallelConfig, rank: number): RankPlace {
  return { rank, stage: Math.floor(rank / p.tp), tpRank: rank % p.tp };
}

/** Layers [first, end) of stage s: balanced, earlier stages take the remainder (the last one holds the head). */
export function stageLayers(numLayers: number, pp: number, stage: number): [number, number] {
  const at = (s: number) => Math.ceil((numLayers * s) / pp);
  return [at(stage), at(stage + 1)];
}

export function stageSpec(p: ParallelConfig, numLayers: number, rank: number): StageSpec {
  const { stage, tpRank } = placeOf(p, rank);
  return {
    layers: stageLayers(numLayers, p.pp, stage),
    first: stage === 0,
    last: stage === p.pp - 1,
    prevPeer: stage === 0 ? null : (stage - 1) * p.tp + tpRank,
    nextPeer: stage === p.pp - 1 ? null : (stage + 1) * p.tp + tpRank,
  };
}

/** KV heads each rank of a tp group caches (replicated when there are fewer KV heads than ranks). */
export function kvHeadsPerRank(c: ModelConfig, tp: number): number {
  return c.numKvHeads % tp === 0 ? c.numKvHeads / tp : 1;
}

/** Targets whose backends take a communicator (backends/collectives.ts). */
export const SHARDED_TARGETS = ["reference", "cpu", "cuda"];

/** Typed refusals for splits the model cannot take. */
export function checkParallel(c: ModelConfig, p: ParallelConfig, target: string): void {
  for (const [flag, n] of [["--tp", p.tp], ["--pp", p.pp]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new OptionError(flag, `must be a positive integer, got ${n}`);
  }
  if (p.tp * p.pp === 1) return;
  if (c.numHeads % p.tp !== 0) {
    throw new OptionError("--tp", `${c.numHeads} attention heads do not split over ${p.tp} ranks`, `pick a --tp that divides ${c.numHeads}`);
  }
  if (c.numKvHeads % p.tp !== 0 && p.tp % c.numKvHeads !== 0) {
    throw new OptionError("--tp", `${c.numKvHeads} KV heads neither split over ${p.tp} ranks nor divide them (to be replicated)`, `pick a --tp that divides ${c.numKvHeads} or is a multiple of it`);
  }
  if (p.tp > c.vocabSize || p.tp > c.intermediateSize) throw new OptionError("--tp", `${p.tp} ranks for a vocabulary of ${c.vocabSize} and an MLP of ${c.intermediateSize}`);
  if (p.pp > c.numLayers) {
    throw new OptionError("--pp", `${p.pp} stages for ${c.numLayers} layers`, `use at most --pp ${c.numLayers} (each stage needs a layer)`);
  }
  if (!SHARDED_TARGETS.includes(target)) {
    throw new OptionError("--target", `sharded engines run on the ${SHARDED_TARGETS.join(", ")} backends for now (their ops perform the collectives); "${target}" does not run collectives yet`, "build with --target cpu or reference, or without --tp/--pp");
  }
}

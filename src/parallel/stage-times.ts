/**
 * How busy each pipeline stage is: per stage, the microseconds its ranks computed (steps
 * less collectives and hand-off waits, mean over the stage's tensor-parallel ranks) and
 * the microseconds it sat idle while the main thread waited on a step (the pipeline
 * bubble and the hand-offs). Time with no step in flight (scheduling, sampling on the main
 * thread between unpipelined steps) is outside both: every stage idles then. With steps
 * in flight across each other (pipelineDepth > 1) the wall time is the time with any in
 * flight, sampling included.
 */
import type { RankStats } from "./rank-group.js";

export interface StageTime {
  stage: number;
  busyUs: number;
  idleUs: number;
}

export interface StageTimes {
  /** Steps (forward calls) and the wall microseconds with at least one in flight. */
  steps: number;
  wallUs: number;
  /** Steps submitted while another was still in flight (cross-step pipelining). */
  overlapped: number;
  stages: StageTime[];
}

export function stageTimes(ranks: RankStats[], wall: { steps: number; us: number; overlapped?: number }, tp: number): StageTimes {
  const stages: StageTime[] = [];
  for (let s = 0; s * tp < ranks.length; s++) {
    const mine = ranks.slice(s * tp, (s + 1) * tp);
    const busyUs = mine.reduce((n, r) => n + r.busyUs, 0) / mine.length;
    stages.push({ stage: s, busyUs, idleUs: Math.max(0, wall.us - busyUs) });
  }
  return { steps: wall.steps, wallUs: wall.us, overlapped: wall.overlapped ?? 0, stages };
}

/** b - a: the times of the steps run between two readings. */
export function stageTimesSince(a: StageTimes, b: StageTimes): StageTimes {
  return {
    steps: b.steps - a.steps,
    wallUs: b.wallUs - a.wallUs,
    overlapped: b.overlapped - a.overlapped,
    stages: b.stages.map((s, i) => ({ stage: s.stage, busyUs: s.busyUs - a.stages[i].busyUs, idleUs: s.idleUs - a.stages[i].idleUs })),
  };
}

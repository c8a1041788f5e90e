/**
 * The split and the communication of a sharded engine, as `llmrt inspect` prints them:
 * per rank its stage, layers, heads and bytes; per step what each stage moves between
 * ranks (payload per token row T, per logit row R), and the total for one decode token.
 */
import type { RankManifest } from "../engine/format.js";
import { deserializeGraph } from "../engine/format.js";
import { formatBytes } from "../engine/report.js";
import type { ModelConfig } from "../checkpoint/config.js";
import type { Graph } from "../graph/ir.js";
import { commOf, type CommEntry, type RankPlan } from "./plan.js";

export interface RankView {
  rank: number;
  stage: number;
  tpRank: number;
  layers: [number, number];
  kvHeads: number;
  graph: Graph;
  weightBytes: number;
  arenaBytes: number;
}

export function rankView(r: RankManifest): RankView {
  const weightBytes = Object.values(r.report.weightBytes).reduce((a, b) => a + b, 0);
  return { rank: r.rank, stage: r.stage, tpRank: r.tpRank, layers: r.layers, kvHeads: r.kvHeads, graph: deserializeGraph(r.graph), weightBytes, arenaBytes: r.memoryPlan.arenaBytes };
}

function heads(g: Graph): string {
  const att = g.ops.find((op) => op.op === "attention" || op.op === "attention_qkv");
  return att && "numHeads" in att ? `${att.numHeads}/${att.numKvHeads}` : "-";
}

/** "all_reduce 7 x 256 B/T, send 1 x 256 B/T": counted by op and payload, in order of first use. */
function grouped(entries: CommEntry[]): string {
  const m = new Map<string, { op: string; size: string; n: number }>();
  for (const e of entries) {
    const size = `${formatBytes(e.bytesPerRow)}/${e.rows}`;
    const g = m.get(`${e.op} ${size}`) ?? m.set(`${e.op} ${size}`, { op: e.op, size, n: 0 }).get(`${e.op} ${size}`)!;
    g.n++;
  }
  return [...m.values()].map((g) => `${g.op} ${g.n} x ${g.size}`).join(", ") || "none";
}

export function describeParallel(c: ModelConfig, tp: number, pp: number, ranks: RankView[]): string[] {
  const kvPerToken = (r: RankView) => 2 * (r.layers[1] - r.layers[0]) * r.kvHeads * c.headDim * 4;
  const lines = [
    `parallel  tp ${tp} x pp ${pp} = ${tp * pp} ranks (worker threads, shared-memory collectives; rank = stage * ${tp} + tp rank)`,
    `  rank stage tp  layers  heads q/kv  weights    arena      KV f32/token`,
    ...ranks.map((r) =>
      `  ${String(r.rank).padEnd(4)} ${String(r.stage).padEnd(5)} ${String(r.tpRank).padEnd(3)} ${`${r.layers[0]}..${r.layers[1] - 1}`.padEnd(7)} ${heads(r.graph).padEnd(11)} ${formatBytes(r.weightBytes).padEnd(10)} ${formatBytes(r.arenaBytes).padEnd(10)} ${formatBytes(kvPerToken(r))}`,
    ),
    `communication per step (T = tokens in the step, R = logit rows), each rank:`,
  ];
  let decodeBytes = 0;
  let decodeOps = 0;
  for (let s = 0; s < pp; s++) {
    const r = ranks.find((x) => x.stage === s && x.tpRank === 0)!;
    const e = commOf(r.graph);
    lines.push(`  stage ${s}: ${grouped(e)}`);
    // a decode step of one sequence: T = R = 1; all-reduce and all-gather move each rank's payload, send once per boundary
    for (const x of e) if (x.op !== "recv") (decodeBytes += x.bytesPerRow), decodeOps++;
  }
  lines.push(`  one decode token (T = R = 1): ${decodeOps} collectives on the critical path, ${formatBytes(decodeBytes)} of payload per rank`);
  return lines;
}

/** The same view of a plan not yet built (inspect of a checkpoint with --tp/--pp). */
export function planView(p: RankPlan): RankView {
  const weightBytes = Object.values(p.report.weightBytes).reduce((a, b) => a + b, 0);
  return { rank: p.rank, stage: p.stage, tpRank: p.tpRank, layers: p.layers, kvHeads: p.kvHeads, graph: p.graph, weightBytes, arenaBytes: p.memory.arenaBytes };
}

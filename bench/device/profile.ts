/**
 * Where a decode step's time goes on the GPU, per shape and batch size: the CUDA-graph
 * replay, the same step launch by launch with each op's share (grouped by kind, matmuls
 * by path and shape), the host side of a step (forward() copying every logits row out
 * and a JavaScript argmax, against forwardTopK picking on the device), and the tactic
 * table the bind timed. Context: every sequence has `context` tokens cached.
 */
import { median } from "../../src/cli/bench.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { argmax } from "../../src/runtime/sampler.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import type { DummyEngine } from "./speed.js";

export interface BatchProfile {
  batch: number;
  context: number;
  graph_us: number | null;
  step_us: number;
  /** Label -> microseconds per step (summed over layers), largest first. */
  ops: [string, number][];
  /** Kernel -> microseconds per step, largest first. */
  kernels: [string, number][];
  /** forward() wall time (step + logits to the host), and a JS argmax over them. */
  host_forward_ms: number;
  host_argmax_ms: number;
  /** forwardTopK(1) wall time: the step with the argmax on the device. */
  device_greedy_ms: number;
  /** GPU time of that argmax alone, and of a top-40 (launch by launch). */
  argmax_us: number;
  top40_us: number;
  /** Weight bytes / graph time (GB/s). */
  weight_gbps: number | null;
}

export function profileBatch(e: DummyEngine, batch: number, context: number, reps = 20): BatchProfile {
  const { engine, bound } = e;
  const V = engine.config.vocabSize;
  const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false);
  const seqs = Array.from({ length: batch }, (_, s) => {
    const seq = new Sequence(s, Array.from({ length: context + 1 }, (_, i) => (i * 7919 + s) % V));
    pool.reserve(seq, context + 1);
    seq.numComputed = context; // the cache holds whatever is there: timing only
    return seq;
  });
  const step = buildStep(seqs.map((seq) => ({ seq, numNew: 1, wantLogits: true })), engine.kv.blockSize);
  const p = bound.profile(step, reps);
  const byLabel = new Map<string, number>();
  for (const o of p.ops) byLabel.set(o.label, (byLabel.get(o.label) ?? 0) + o.us);
  const ops = [...byLabel].sort((a, b) => b[1] - a[1]);

  const wall = (f: () => void) => {
    const t: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now();
      f();
      t.push(performance.now() - t0);
    }
    return median(t.slice(2));
  };
  let logits: Float32Array = new Float32Array(0);
  const host_forward_ms = wall(() => (logits = bound.forward(step).get("logits")!));
  const host_argmax_ms = wall(() => {
    for (let r = 0; r < batch; r++) if (logits.subarray(r * V, (r + 1) * V).every((x) => !Number.isNaN(x))) argmax(logits.subarray(r * V, (r + 1) * V));
  });
  const device_greedy_ms = wall(() => bound.forwardTopK(step, 1));
  const argmax_us = bound.timeSelect(batch, 1);
  const top40_us = bound.timeSelect(batch, 40, 5);
  return {
    batch,
    context,
    graph_us: p.graphUs,
    step_us: p.stepUs,
    ops,
    kernels: p.kernels.map((k) => [k.kernel, k.us]),
    host_forward_ms,
    host_argmax_ms,
    device_greedy_ms,
    argmax_us,
    top40_us,
    weight_gbps: p.graphUs ? e.decodeBytes / (p.graphUs * 1e3) : null,
  };
}

/** A few lines per batch: totals, then the ops that take 90% of the launch-by-launch time. */
export function formatProfile(shape: string, b: BatchProfile): string {
  const f = (x: number) => x.toFixed(1);
  const head = `${shape} b${b.batch} ctx${b.context}: graph ${b.graph_us === null ? "-" : f(b.graph_us)} us (${b.weight_gbps === null ? "-" : b.weight_gbps.toFixed(0)} GB/s of weights), launch by launch ${f(b.step_us)} us; host: forward ${b.host_forward_ms.toFixed(2)} ms + JS argmax ${b.host_argmax_ms.toFixed(2)} ms, device greedy ${b.device_greedy_ms.toFixed(2)} ms (argmax ${f(b.argmax_us)} us, top-40 ${f(b.top40_us)} us)`;
  const lines = [head];
  let acc = 0;
  for (const [label, us] of b.ops) {
    if (acc > 0.9 * b.step_us) break;
    acc += us;
    lines.push(`    ${f(us).padStart(8)} us  ${label}`);
  }
  lines.push(`  kernels: ${b.kernels.slice(0, 8).map(([k, us]) => `${k} ${f(us)}`).join(", ")}`);
  return lines.join("\n");
}

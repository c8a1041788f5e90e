/**
 * The CPU backend splits a step's program at each host op (collectives, embedding_part:
 * src/backends/cpu/host-ops.ts). On one rank an all_reduce is a copy and embedding_part
 * over the whole vocabulary is the embedding, so a graph with one after every matmul and
 * a vocabulary-parallel embedding must give the plain graph's outputs bit for bit, with
 * f32, bf16 and fp16 weights, on one thread and on the pool, profiled or not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KvCacheShape, WeightMap } from "../../src/backends/backend.js";
import { CpuBackend, type CpuBackendOptions } from "../../src/backends/cpu/backend.js";
import { roundTrip } from "../../src/engine/weights.js";
import type { Graph, Op } from "../../src/graph/ir.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { planMemory } from "../../src/graph/passes/plan-memory.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { BLOCK_SIZE, VARIANTS, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

/** g with every matmul's output passed through an all_reduce, and the embedding made vocabulary-parallel. */
function withCollectives(g: Graph): Graph {
  const tensors = new Map(g.tensors);
  const ops: Op[] = [];
  for (const op of g.ops) {
    if (op.op !== "matmul" && op.op !== "embedding") {
      ops.push(op);
      continue;
    }
    const part = `${op.out}.part`;
    tensors.set(part, g.tensors.get(op.out)!);
    ops.push(op.op === "matmul" ? { ...op, out: part } : { op: "embedding_part", out: part, table: op.table, vocabStart: 0 });
    ops.push({ op: "all_reduce", out: op.out, x: part });
  }
  return { tensors, ops, outputs: g.outputs };
}

function logits(g: Graph, weights: WeightMap, kv: KvCacheShape, opts: CpuBackendOptions): Float32Array[] {
  const cpu = new CpuBackend(opts).bind(g, weights, kv, planMemory(g, { T: 16, R: 16 }));
  try {
    return scenario().map((s) => cpu.forward(s).get("logits")!);
  } finally {
    cpu.close();
  }
}

test("cpu backend: a program split at every collective gives the unsplit graph's logits bit for bit", () => {
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const split = withCollectives(g);
  assert.ok(split.ops.filter((o) => o.op === "all_reduce").length > ckpt.config.numLayers * 3, "many split points");
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
  for (const dt of ["f32", "bf16", "f16"] as const) {
    const weights: WeightMap = new Map([...weightsFor(g, ckpt)].map(([n, v]) => [n, roundTrip(v, (g.tensors.get(n) as { shape: number[] }).shape.length > 1 ? dt : "f32")]));
    for (const opts of [{ threads: 1 }, { threads: 2, parallelMacs: 0 }, { threads: 2, parallelMacs: 0, profile: true }]) {
      const want = logits(g, weights, kv, opts);
      const got = logits(split, weights, kv, opts);
      want.forEach((w, i) => assert.deepEqual(got[i], w, `${dt} ${JSON.stringify(opts)} step ${i}`));
    }
  }
});

test("cpu backend: send and recv without a communicator are refused, not skipped", () => {
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const x = g.ops.find((o) => o.op === "matmul")!;
  const sent: Graph = { ...g, ops: [...g.ops, { op: "send", x: (x as { out: string }).out, peer: 1 }] };
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
  assert.throws(() => logits(sent, weightsFor(g, ckpt), kv, { threads: 1 }), /send needs a communicator/);
});

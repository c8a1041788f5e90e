/**
 * The sharding at build time, without threads: each rank's graph is well formed and
 * holds its heads; the ranks' weight slices put back together are the whole weights;
 * pipeline stages partition the layers and pass one activation; micro-batches of a step
 * give the logits of the whole step; steps survive shared memory; bad splits are refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest, SHARDED_ENGINE_FORMAT_VERSION } from "../../src/engine/format.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { EngineError, OptionError } from "../../src/errors.js";
import type { Graph } from "../../src/graph/ir.js";
import { pipelineStage } from "../../src/graph/passes/pipeline-stage.js";
import { headsOf, shardTensorParallel, splitRange } from "../../src/graph/passes/shard.js";
import { validateGraph } from "../../src/graph/validate.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { describeParallel, rankView } from "../../src/parallel/describe.js";
import { checkParallel, stageLayers, stageSpec } from "../../src/parallel/layout.js";
import { splitStep } from "../../src/parallel/micro-batch.js";
import { planRanks } from "../../src/parallel/plan.js";
import { decodeStep, encodeStep, stepWords } from "../../src/parallel/step-codec.js";
import { BLOCK_SIZE, VARIANTS, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

const ops = (g: Graph, kind: string) => g.ops.filter((o) => o.op === kind);

test("splitRange covers [0, n) in balanced parts; headsOf splits or replicates KV heads", () => {
  for (const n of [1, 2, 5, 99, 172, 173]) {
    for (const p of [1, 2, 3, 4]) {
      const parts = Array.from({ length: p }, (_, i) => splitRange(n, p, i));
      assert.equal(parts[0][0], 0);
      assert.equal(parts.at(-1)![1], n);
      parts.forEach((r, i) => i > 0 && assert.equal(r[0], parts[i - 1][1]));
      const sizes = parts.map(([a, b]) => b - a);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
    }
  }
  assert.deepEqual(headsOf(8, 4, 2, 1), { q: [4, 8], kv: [2, 4] });
  assert.deepEqual(headsOf(8, 1, 2, 1), { q: [4, 8], kv: [0, 1] }); // MQA: replicated
  assert.deepEqual(headsOf(8, 2, 4, 3), { q: [6, 8], kv: [1, 2] }); // each pair of ranks shares a KV head
});

for (const [name, over] of Object.entries(VARIANTS)) {
  test(`shard tp 2 (${name}): valid rank graphs with half the heads; the ranks' weight slices make the whole weights`, () => {
    const ckpt = variantCheckpoint({ ...over, intermediateSize: 41, vocabSize: 63 }); // odd: uneven splits
    const c = ckpt.config;
    const plain = buildLlamaGraph(c);
    const ranks = [0, 1].map((r) => shardTensorParallel(plain, 2, r).graph);
    for (const g of ranks) {
      validateGraph(g);
      for (const a of ops(g, "attention")) {
        assert.ok(a.op === "attention");
        assert.equal(a.numHeads, c.numHeads / 2);
        assert.equal(a.numKvHeads, c.numKvHeads === 1 ? 1 : c.numKvHeads / 2);
      }
      assert.equal(ops(g, "all_reduce").length, 1 + 2 * c.numLayers); // embedding + attention out + MLP down per layer
      assert.equal(ops(g, "all_gather").length, 1);
    }
    // every split weight is rows or columns of the whole: put back together, equal
    for (const [w, d] of plain.tensors) {
      if (d.kind !== "weight") continue;
      const whole = materializeWeight(plain, w, ckpt);
      const parts = ranks.map((g) => ({ shape: (g.tensors.get(w) as { shape: number[] }).shape, v: materializeWeight(g, w, ckpt) }));
      if (parts[0].v.length === whole.length) {
        for (const p of parts) assert.deepEqual(p.v, whole, `${w} replicated`); // norms; MQA's one KV head
        continue;
      }
      const byRows = parts[0].shape.length === 1 || parts[0].shape[1] === d.shape[1];
      if (byRows) {
        assert.deepEqual(Float32Array.from([...parts[0].v, ...parts[1].v]), whole, `${w} rows`);
      } else {
        const [rows, cols] = d.shape;
        const c0 = parts[0].shape[1];
        const joined = new Float32Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          joined.set(parts[0].v.subarray(r * c0, (r + 1) * c0), r * cols);
          joined.set(parts[1].v.subarray(r * (cols - c0), (r + 1) * (cols - c0)), r * cols + c0);
        }
        assert.deepEqual(joined, whole, `${w} columns`);
      }
    }
  });
}

test("pipeline stages partition the layers; each passes the residual stream on by send/recv", () => {
  const c = variantCheckpoint({ numLayers: 5 }).config;
  const plain = buildLlamaGraph(c);
  assert.deepEqual([0, 1, 2].map((s) => stageLayers(5, 3, s)), [[0, 2], [2, 4], [4, 5]]);
  const p = { tp: 1, pp: 3 };
  const stages = [0, 1, 2].map((r) => pipelineStage(plain, stageSpec(p, 5, r)));
  stages.forEach((g, s) => {
    validateGraph(g);
    assert.equal(ops(g, "recv").length, s === 0 ? 0 : 1);
    assert.equal(ops(g, "send").length, s === 2 ? 0 : 1);
    assert.deepEqual(g.outputs, s === 2 ? ["logits"] : []);
    assert.equal(ops(g, "embedding").length, s === 0 ? 1 : 0);
  });
  // every op of the model runs in exactly one stage (the RoPE constant in each that reads it)
  const seen = stages.flatMap((g) => g.ops.filter((o) => o.op !== "recv" && o.op !== "send" && o.op !== "rope_inv_freq"));
  assert.equal(seen.length, plain.ops.filter((o) => o.op !== "rope_inv_freq").length);
  assert.equal(new Set(seen).size, seen.length);
});

test("a step cut into micro-batches (cuts inside sequences too) gives exactly the whole step's logits", () => {
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = buildLlamaGraph(ckpt.config);
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
  const whole = new ReferenceBackend().bind(g, weightsFor(g, ckpt), kv);
  const cut = new ReferenceBackend().bind(g, weightsFor(g, ckpt), kv);
  for (const [i, step] of scenario().entries()) {
    const want = whole.forward(step).get("logits")!;
    const got = new Float32Array(want.length);
    const V = ckpt.config.vocabSize;
    const mbs = splitStep(step, [3, 2, 4][i]);
    assert.ok(mbs.length > 1);
    for (const mb of mbs) {
      const l = cut.forward(mb.step).get("logits")!;
      mb.rows.forEach((row, k) => got.set(l.subarray(k * V, (k + 1) * V), row * V));
    }
    assert.deepEqual(got, want, `step ${i}`);
  }
});

test("a step with queued block copies survives the shared step area", () => {
  const [step] = scenario();
  const copies: [number, number][] = [[3, 9], [4, 10]];
  const w = new Int32Array(stepWords(64, 8, 64, 64, 8));
  encodeStep(w, step, copies);
  const back = decodeStep(w);
  assert.deepEqual(back.copies, copies);
  assert.deepEqual(back.step, step);
  assert.throws(() => encodeStep(new Int32Array(10), step, []), /step area holds 10/);
});

test("refusals: heads that do not split, KV heads that neither split nor divide, more stages than layers, a target without collectives; a sharded dir does not load as one engine", () => {
  const c = variantCheckpoint({ numKvHeads: 2 }).config; // 4 heads, 2 KV heads, 2 layers
  assert.throws(() => checkParallel(c, { tp: 3, pp: 1 }, "reference"), (e: unknown) => e instanceof OptionError && /4 attention heads do not split over 3/.test(e.message));
  assert.throws(() => checkParallel({ ...c, numHeads: 6, numKvHeads: 3 }, { tp: 2, pp: 1 }, "reference"), /3 KV heads neither split/);
  assert.throws(() => checkParallel(c, { tp: 1, pp: 3 }, "reference"), /3 stages for 2 layers/);
  assert.doesNotThrow(() => checkParallel(c, { tp: 2, pp: 1 }, "cuda"));
  assert.throws(() => checkParallel(c, { tp: 2, pp: 1 }, "webgpu"), /reference, cpu, cuda backends/);
  checkParallel(c, { tp: 2, pp: 1 }, "cpu");
  checkParallel(c, { tp: 4, pp: 2 }, "reference"); // 2 KV heads over 4 ranks: replicated

  const dir = mkdtempSync(join(tmpdir(), "llmrt-shard-"));
  try {
    const ckpt = variantCheckpoint({ numKvHeads: 2 });
    const m = buildShardedEngineDir(ckpt, dir, { tp: 2, pp: 2 }, { maxSeqs: 2, maxBatchTokens: 16, maxLogitRows: 16 });
    assert.equal(m.version, SHARDED_ENGINE_FORMAT_VERSION);
    assert.deepEqual(m.parallel!.ranks.map((r) => [r.stage, r.tpRank, r.weights.file]), [[0, 0, "weights.rank0.bin"], [0, 1, "weights.rank1.bin"], [1, 0, "weights.rank2.bin"], [1, 1, "weights.rank3.bin"]]);
    assert.equal(readManifest(dir).parallel!.tp, 2);
    // what inspect prints: the split and the communication per step
    const view = describeParallel(ckpt.config, 2, 2, m.parallel!.ranks.map(rankView)).join("\n");
    assert.match(view, /tp 2 x pp 2 = 4 ranks/);
    assert.match(view, /stage 0: all_reduce 3 x 128 B\/T, send 1 x 128 B\/T/); // embedding + 2 in its one layer
    assert.match(view, /stage 1: recv 1 x 128 B\/T, all_reduce 2 x 128 B\/T, all_gather 1 x 128 B\/R/);
    assert.throws(() => Engine.load(dir), (e: unknown) => e instanceof EngineError && /sharded engine \(tp 2 x pp 2 = 4 ranks\)/.test(e.message) && /LLM\.load/.test(e.message));
    // the plans are the same whether inspected or built
    const plans = planRanks(ckpt.config, resolveBuildOptions(ckpt.config, { maxSeqs: 2, maxBatchTokens: 16, maxLogitRows: 16 }), { tp: 2, pp: 2 });
    assert.deepEqual(plans.map((p) => p.memory.arenaBytes), m.parallel!.ranks.map((r) => r.memoryPlan.arenaBytes));
    buildEngineDir(ckpt, dir); // a single-rank rebuild over it is version 1 again
    assert.equal(readManifest(dir).parallel, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

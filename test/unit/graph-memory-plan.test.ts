/**
 * Memory planning: offsets never overlap for tensors alive at once, the arena is smaller
 * than the naive sum, and the reference backend running from the one arena gives
 * exactly the outputs of a run with a buffer per activation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { Graph } from "../../src/graph/ir.js";
import { DEFAULT_PASSES, runPasses } from "../../src/graph/passes/pipeline.js";
import { checkPlan, planMemory } from "../../src/graph/passes/plan-memory.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { VARIANTS, runScenario, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

const CAP = { T: 8, R: 8 }; // the scenario's largest step has 8 tokens, all wanting logits

test("planned arena runs equal unplanned runs, on plain and optimized graphs of every variant", () => {
  for (const [variant, over] of Object.entries(VARIANTS)) {
    const ckpt = variantCheckpoint(over);
    const plain = buildLlamaGraph(ckpt.config);
    for (const g of [plain, runPasses(plain).graph]) {
      const plan = planMemory(g, CAP);
      checkPlan(g, plan);
      assert.ok(plan.arenaBytes < plan.naiveBytes / 2, `${variant}: arena ${plan.arenaBytes} vs naive ${plan.naiveBytes}`);
      assert.deepEqual(runScenario(g, ckpt, plan), runScenario(g, ckpt), variant);
    }
  }
});

test("a chain reuses memory: four buffers in a row need two slots", () => {
  const g: Graph = {
    tensors: new Map([
      ["a", { kind: "activation", rows: "T", cols: 16 }],
      ["b", { kind: "activation", rows: "T", cols: 16 }],
      ["c", { kind: "activation", rows: "T", cols: 16 }],
      ["d", { kind: "activation", rows: "T", cols: 16 }],
    ]),
    ops: [
      { op: "silu", out: "b", x: "a" },
      { op: "silu", out: "c", x: "b" },
      { op: "silu", out: "d", x: "c" },
    ],
    outputs: ["d"],
  };
  const plan = planMemory(g, { T: 4, R: 1 });
  checkPlan(g, plan);
  assert.equal(plan.naiveBytes, 4 * 256);
  assert.equal(plan.arenaBytes, 2 * 256);
  assert.notEqual(plan.offsets.b, plan.offsets.c); // alive together at op 1
  assert.equal(plan.offsets.a, plan.offsets.c); // a is dead once b exists
});

test("offsets are 64-byte aligned and T/R rows are sized by the capacity", () => {
  const ckpt = variantCheckpoint(VARIANTS["qwen2 qkv bias"]);
  const g = runPasses(buildLlamaGraph(ckpt.config), DEFAULT_PASSES).graph;
  const small = planMemory(g, { T: 3, R: 1 });
  const big = planMemory(g, { T: 300, R: 10 });
  for (const off of Object.values(small.offsets)) assert.equal(off % 64, 0);
  assert.ok(big.arenaBytes > 50 * small.arenaBytes);
  assert.throws(() => checkPlan(g, { ...small, offsets: { ...small.offsets, "l0.qkv": small.offsets["l0.attn_in"] } }), /overlap/);
});

test("a step beyond the planned capacity is refused, not written past the arena", () => {
  const ckpt = variantCheckpoint({});
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const c = ckpt.config;
  const kv = { numLayers: c.numLayers, numBlocks: 16, blockSize: 4, numKvHeads: c.numKvHeads, headDim: c.headDim };
  const bound = new ReferenceBackend().bind(g, weightsFor(g, ckpt), kv, planMemory(g, { T: 4, R: 8 }));
  assert.throws(() => bound.forward(scenario()[0]), /exceeds the planned 4/);
});

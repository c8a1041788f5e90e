/**
 * Every pass, on every model variant: the graph's outputs are unchanged (run on the
 * reference backend over ragged, chunked, two-sequence steps), the input graph is not
 * mutated, the result is well formed, and the structure changed as the pass intends.
 * Each pass is applied to the pipeline's graph as it stands just before that pass.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Graph } from "../../src/graph/ir.js";
import { DEFAULT_PASSES } from "../../src/graph/passes/pipeline.js";
import { validateGraph } from "../../src/graph/validate.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { planEngine } from "../../src/engine/build.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { VARIANTS, count, maxRelErr, runScenario, snapshot, variantCheckpoint } from "./graph-util.js";

type Check = (before: Graph, after: Graph, layers: number, over: (typeof VARIANTS)[string]) => void;

const weightSource = (g: Graph, name: string) => {
  const d = g.tensors.get(name);
  assert.ok(d && d.kind === "weight", `${name} is a weight`);
  return d.source;
};

const STRUCTURE: Record<string, Check> = {
  "fold-constants": (b, a) => {
    assert.equal(count(b, "rope_inv_freq"), 1);
    assert.equal(count(a, "rope_inv_freq"), 0);
    assert.equal(weightSource(a, "rope.inv_freq")?.kind, "fold");
  },
  "fuse-qkv": (b, a, L, over) => {
    assert.equal(count(a, "matmul"), count(b, "matmul") - 2 * L);
    assert.equal(count(a, "slice_cols"), 3 * L);
    const src = weightSource(a, "blk.0.attn_qkv.weight");
    assert.deepEqual(src, { kind: "concat", parts: ["q", "k", "v"].map((p) => ({ kind: "checkpoint", name: `blk.0.attn_${p}.weight` })) });
    assert.equal(a.tensors.has("blk.0.attn_qkv.bias"), Boolean(over.attentionBias));
  },
  "fuse-gate-up": (b, a, L) => {
    assert.equal(count(a, "matmul"), count(b, "matmul") - L);
    assert.equal(weightSource(a, "blk.1.ffn_gate_up.weight")?.kind, "concat");
  },
  "fuse-add-rmsnorm": (b, a, L) => {
    assert.equal(count(a, "add_rmsnorm"), 2 * L - 1); // the last residual add feeds gather_rows, not a norm
    assert.equal(count(a, "add"), 1);
    assert.equal(count(a, "rmsnorm"), count(b, "rmsnorm") - (2 * L - 1));
  },
  "fuse-silu-mul": (b, a, L) => {
    assert.equal(count(a, "silu_mul"), L);
    assert.equal(count(a, "silu") + count(a, "mul"), 0);
    assert.equal(count(a, "slice_cols"), count(b, "slice_cols") - 2 * L);
  },
  "fuse-rope-attention": (b, a, L, over) => {
    assert.equal(count(a, "attention_qkv"), L);
    for (const k of ["rope", "kv_write", "attention", "slice_cols"]) assert.equal(count(a, k), 0, k);
    assert.equal(count(a, "rmsnorm"), count(b, "rmsnorm") - (over.qkNorm ? 2 * L : 0));
  },
  "eliminate-dead": (b, a) => {
    assert.equal(a.ops.length, b.ops.length); // the fusions left no dead op behind
    assert.ok(b.tensors.has("blk.0.attn_q.weight") && !a.tensors.has("blk.0.attn_q.weight"));
    assert.ok(b.tensors.has("l0.gate") && !a.tensors.has("l0.gate"));
    for (const [name, d] of a.tensors) if (d.kind === "weight") assert.ok(a.ops.some((o) => JSON.stringify(o).includes(`"${name}"`)), name);
  },
};

/** The pipeline's graph just before pass k. */
function before(k: number, g: Graph): Graph {
  return DEFAULT_PASSES.slice(0, k).reduce((acc, p) => p.run(acc), g);
}

DEFAULT_PASSES.forEach((pass, k) => {
  test(`${pass.name}: outputs unchanged on every variant, input untouched, structure as intended`, () => {
    for (const [variant, over] of Object.entries(VARIANTS)) {
      const ckpt = variantCheckpoint(over);
      const plain = buildLlamaGraph(ckpt.config);
      const g = before(k, plain);
      const snap = snapshot(g);
      const next = pass.run(g);
      assert.equal(snapshot(g), snap, `${variant}: ${pass.name} mutated its input`);
      validateGraph(next);
      STRUCTURE[pass.name](g, next, ckpt.config.numLayers, over);
      const err = maxRelErr(runScenario(next, ckpt), runScenario(plain, ckpt));
      assert.ok(err <= 1e-6, `${variant}: ${pass.name} moved the outputs by ${err}`);
    }
  });
});

test("the whole pipeline: 8 kernels per layer, outputs bit-identical to the plain graph", () => {
  for (const over of Object.values(VARIANTS)) {
    const ckpt = variantCheckpoint(over);
    const plain = buildLlamaGraph(ckpt.config);
    const g = before(DEFAULT_PASSES.length, plain);
    assert.equal(g.ops.length, 1 + 8 * ckpt.config.numLayers + 4); // embedding, 8 per layer, add + gather + norm + head
    assert.deepEqual(runScenario(g, ckpt), runScenario(plain, ckpt));
  }
});

test("fuse-silu-mul and fuse-rope-attention need the packed tensors of the fusions before them", () => {
  const g = buildLlamaGraph(variantCheckpoint({}).config);
  for (const name of ["fuse-silu-mul", "fuse-rope-attention"]) {
    const pass = DEFAULT_PASSES.find((p) => p.name === name)!;
    assert.equal(snapshot(pass.run(g)), snapshot(g), `${name} on the plain graph`);
  }
});

test("eliminate-dead removes an unread op chain and its tensors, keeps KV writes", () => {
  const g = buildLlamaGraph(variantCheckpoint({}).config);
  g.tensors.set("junk.w", { kind: "weight", shape: [8, 32] });
  g.tensors.set("junk.a", { kind: "activation", rows: "T", cols: 8 });
  g.tensors.set("junk.b", { kind: "activation", rows: "T", cols: 8 });
  g.ops.splice(3, 0, { op: "matmul", out: "junk.a", x: "x.embed", w: "junk.w" }, { op: "silu", out: "junk.b", x: "junk.a" });
  const dce = DEFAULT_PASSES.find((p) => p.name === "eliminate-dead")!;
  const out = dce.run(g);
  for (const t of ["junk.w", "junk.a", "junk.b"]) assert.ok(!out.tensors.has(t), t);
  assert.equal(out.ops.length, g.ops.length - 2);
  assert.equal(count(out, "kv_write"), count(g, "kv_write"));
  assert.match(dce.describe(g, out), /removed 3 dead tensors and 2 dead ops/);
});

test("fusion leaves sibling matmuls apart when the build keeps their weights in different packed formats (a Q4_K_M file's Q6_K attn_v)", () => {
  const config = variantCheckpoint({}).config;
  const options = resolveBuildOptions(config, {});
  // layer 0: Q / K in Q4_K, V in Q6_K; layer 1: gate in Q6_K, up in Q4_K; every other weight Q4_K
  const kept = (name: string) => (name === "blk.0.attn_v.weight" || name === "blk.1.ffn_gate.weight" ? "q6_k" : "q4_k");
  const matmuls = (g: Graph, layer: number) => g.ops.filter((op) => op.op === "matmul" && op.w.startsWith(`blk.${layer}.`)).length;
  const mixed = planEngine(config, options, DEFAULT_PASSES, kept).graph;
  assert.equal(matmuls(mixed, 0), 6, "layer 0: q, k, v apart; gate|up fused; output, down");
  assert.equal(matmuls(mixed, 1), 5, "layer 1: qkv fused; gate, up apart; output, down");
  const uniform = planEngine(config, options, DEFAULT_PASSES, () => "q4_k").graph;
  assert.deepEqual([matmuls(uniform, 0), matmuls(uniform, 1)], [4, 4], "one format: qkv, gate|up, output, down in every layer");
  assert.deepEqual(uniform.ops, planEngine(config, options).graph.ops, "the same ops as a build that keeps no packed format");
  const ckpt = variantCheckpoint({});
  assert.deepEqual(runScenario(mixed, ckpt), runScenario(buildLlamaGraph(config), ckpt), "outputs unchanged");
});

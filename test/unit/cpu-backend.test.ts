/**
 * The CPU backend against the reference backend on whole graphs: every model variant
 * (GQA/MQA, tied head, qkv bias, q/k norm, sliding window, partial rotary), plain and
 * fused, with and without a memory plan, f32 / bf16 / fp16 weights, three ragged steps
 * sharing a paged cache (f32, f16, bf16); copy-on-write block copies; plan limits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KvCacheShape, WeightMap } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { roundTrip } from "../../src/engine/weights.js";
import type { Graph } from "../../src/graph/ir.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { planMemory } from "../../src/graph/passes/plan-memory.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { BLOCK_SIZE, VARIANTS, maxRelErr, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

function kvFor(g: { numLayers: number; numKvHeads: number; headDim: number }): KvCacheShape {
  return { numLayers: g.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: g.numKvHeads, headDim: g.headDim };
}

/** Logits of every scenario step on both backends. */
function both(g: Graph, weights: WeightMap, kv: KvCacheShape, withPlan: boolean): [Float32Array[], Float32Array[]] {
  const plan = withPlan ? planMemory(g, { T: 16, R: 16 }) : undefined;
  const ref = new ReferenceBackend().bind(g, weights, kv, plan);
  const cpu = new CpuBackend({ threads: 2, parallelMacs: 0 }).bind(g, weights, kv, plan);
  try {
    const steps = scenario();
    return [steps.map((s) => ref.forward(s).get("logits")!), steps.map((s) => cpu.forward(s).get("logits")!)];
  } finally {
    cpu.close();
  }
}

for (const [name, over] of Object.entries(VARIANTS)) {
  test(`cpu backend = reference: ${name}, plain and fused graphs`, () => {
    const ckpt = variantCheckpoint(over);
    const plain = buildLlamaGraph(ckpt.config);
    const fused = runPasses(plain).graph;
    for (const [kind, g, withPlan] of [["plain", plain, false], ["fused", fused, true]] as const) {
      const [want, got] = both(g, weightsFor(g, ckpt), kvFor(ckpt.config), withPlan);
      want.forEach((w, i) => assert.ok(maxRelErr(got[i], w) < 1e-5, `${kind} step ${i}: error ${maxRelErr(got[i], w)}`));
    }
  });
}

test("cpu backend = reference with bf16 and fp16 weights (packed 16-bit)", () => {
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  for (const dt of ["bf16", "f16"] as const) {
    const weights: WeightMap = new Map([...weightsFor(g, ckpt)].map(([n, v]) => [n, roundTrip(v, g.tensors.get(n)!.kind === "weight" && (g.tensors.get(n) as { shape: number[] }).shape.length > 1 ? dt : "f32")]));
    const cpu = new CpuBackend({ threads: 1 }).bind(g, weights, kvFor(ckpt.config));
    try {
      assert.ok([...g.tensors].some(([n, d]) => d.kind === "weight" && d.shape.length > 1 && cpu.packedDType(n) === dt), `some matrix stored as ${dt}`);
    } finally {
      cpu.close();
    }
    const [want, got] = both(g, weights, kvFor(ckpt.config), true);
    want.forEach((w, i) => assert.ok(maxRelErr(got[i], w) < 1e-5, `${dt} step ${i}: error ${maxRelErr(got[i], w)}`));
  }
});

test("cpu backend copyBlock copies K and V of every layer", () => {
  const ckpt = variantCheckpoint({});
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const kv = kvFor(ckpt.config);
  const ref = new ReferenceBackend().bind(g, weightsFor(g, ckpt), kv);
  const cpu = new CpuBackend({ threads: 1 }).bind(g, weightsFor(g, ckpt), kv);
  try {
    const [s0, s1] = scenario();
    ref.forward(s0);
    cpu.forward(s0);
    // move every block of the first sequence elsewhere, then attend from the copies
    const table = s1.blockTables[0];
    const moved = Int32Array.from(table, (b, i) => 15 - i);
    table.forEach((b, i) => (ref.copyBlock(b, moved[i]), cpu.copyBlock(b, moved[i])));
    s1.blockTables[0] = moved;
    for (let t = s1.seqStarts[0]; t < s1.seqStarts[1]; t++) s1.slotMapping[t] = moved[Math.floor(s1.positions[t] / BLOCK_SIZE)] * BLOCK_SIZE + (s1.positions[t] % BLOCK_SIZE);
    const want = ref.forward(s1).get("logits")!;
    const got = cpu.forward(s1).get("logits")!;
    assert.ok(maxRelErr(got, want) < 1e-5, `error ${maxRelErr(got, want)}`);
  } finally {
    cpu.close();
  }
});

test("cpu backend = reference with f16 and bf16 KV caches (plain kv_write and fused attention_qkv)", () => {
  for (const [name, over] of [["GQA", VARIANTS["llama GQA, interleaved rope"]], ["q/k norm", VARIANTS["qwen3 q/k norm, headDim 16"]]] as const) {
    const ckpt = variantCheckpoint(over);
    const plain = buildLlamaGraph(ckpt.config);
    for (const g of [plain, runPasses(plain).graph]) {
      for (const dtype of ["f16", "bf16"] as const) {
        const [want, got] = both(g, weightsFor(g, ckpt), { ...kvFor(ckpt.config), dtype }, true);
        // a 16-bit cache rounds K/V on write: f32 sums in another order (SIMD, BLAS) can land a
        // value on the other side of a bf16 rounding boundary (2^-8 relative), hence more room there
        const tol = dtype === "bf16" ? 5e-5 : 1e-5;
        want.forEach((w, i) => assert.ok(maxRelErr(got[i], w) < tol, `${name} ${dtype} step ${i}: error ${maxRelErr(got[i], w)}`));
      }
    }
  }
});

test("cpu backend refuses steps beyond the engine's plan", () => {
  const ckpt = variantCheckpoint({});
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const cpu = new CpuBackend({ threads: 1 }).bind(g, weightsFor(g, ckpt), kvFor(ckpt.config), planMemory(g, { T: 2, R: 2 }));
  try {
    assert.throws(() => cpu.forward(scenario()[0]), /exceeds the planned 2/);
  } finally {
    cpu.close();
  }
});

/**
 * quant/graph-grad.ts: its forward gives the reference backend's logits (every row), and
 * its gradients match central finite differences of the same forward, on the plain and
 * the fused graphs of random-weight models (GQA, biases, per-head q/k norms, a sliding
 * window, odd sizes), with the system BLAS's products where there is one and with the
 * JavaScript ones (LLMRT_BLAS=off).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { planEngine } from "../../src/engine/build.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { materializeWeight } from "../../src/engine/weights.js";
import type { Graph } from "../../src/graph/ir.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { prefillStep } from "../../src/quant/calibrate.js";
import { GraphGrad } from "../../src/quant/graph-grad.js";

const T = 19;

const MODELS: Record<string, Partial<ModelConfig>> = {
  "llama, GQA, odd FFN": { numLayers: 2, hiddenSize: 48, numHeads: 4, numKvHeads: 2, intermediateSize: 37, vocabSize: 61 },
  "biases, q/k norms, sliding window": { numLayers: 2, hiddenSize: 32, numHeads: 4, numKvHeads: 1, intermediateSize: 24, vocabSize: 40, attentionBias: true, qkNorm: true, slidingWindow: 5 },
};

function setup(over: Partial<ModelConfig>, fused: boolean) {
  const ckpt = syntheticCheckpoint(syntheticConfig(over), 3);
  const plan = planEngine(ckpt.config, resolveBuildOptions(ckpt.config, { maxBatchTokens: 32, maxLogitRows: 32, maxSeqLen: 32 }));
  const g: Graph = fused ? plan.graph : plan.plainGraph;
  const weights = new Map<string, Float32Array>();
  for (const [n, d] of g.tensors) if (d.kind === "weight") weights.set(n, materializeWeight(g, n, ckpt));
  const ids = Array.from({ length: T }, (_, i) => (i * 37 + 5) % ckpt.config.vocabSize);
  return { ckpt, g, weights, ids };
}

/** Runs f with LLMRT_BLAS set to `blas` (undefined: as the environment has it). */
function withBlas(blas: string | undefined, f: () => void): void {
  const before = process.env.LLMRT_BLAS;
  if (blas !== undefined) process.env.LLMRT_BLAS = blas;
  try {
    f();
  } finally {
    if (before === undefined) delete process.env.LLMRT_BLAS;
    else process.env.LLMRT_BLAS = before;
  }
}

for (const [label, over] of Object.entries(MODELS)) {
  for (const [fused, blas] of [[false, undefined], [true, undefined], [true, "off"]] as const) {
    const name = `${label}, ${fused ? "fused" : "plain"} graph${blas ? ", JavaScript products" : ""}`;

    test(`graph-grad forward = reference backend logits (${name})`, () => withBlas(blas, () => {
      const { ckpt, g, weights, ids } = setup(over, fused);
      const out = g.outputs[0];
      const mine = new GraphGrad(g, weights).forward(ids).acts.get(out)!;
      const c = ckpt.config;
      const kv = { numLayers: c.numLayers, numBlocks: 2, blockSize: 16, numKvHeads: c.numKvHeads, headDim: c.headDim };
      const ref = new ReferenceBackend().bind(g, weights, kv).forward({ ...prefillStep(ids), logitRows: Int32Array.from(ids, (_, i) => i) }).get(out)!;
      assert.equal(mine.length, ref.length);
      const scale = Math.max(...ref.map(Math.abs));
      for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(mine[i] - ref[i]) <= 1e-4 * scale, `logit ${i}: ${mine[i]} vs ${ref[i]}`);
    }));

    test(`graph-grad gradients = finite differences along them (${name})`, () => withBlas(blas, () => {
      const { g, weights, ids } = setup(over, fused);
      const out = g.outputs[0];
      const model = new GraphGrad(g, weights);
      const tape = model.forward(ids);
      let seed = 1;
      const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5;
      const c = Float32Array.from(tape.acts.get(out)!, rand); // loss = sum c * logits
      const loss = () => model.forward(ids).acts.get(out)!.reduce((s, v, i) => s + c[i] * v, 0);
      // what a model learns: matmul weights and biases, norm weights (not the embedding table nor RoPE's frequencies)
      const names = [...new Set(g.ops.flatMap((op) => (op.op === "matmul" ? [op.w, ...(op.bias ? [op.bias] : [])] : op.op === "rmsnorm" || op.op === "add_rmsnorm" ? [op.weight] : op.op === "attention_qkv" ? [op.qNorm, op.kNorm].filter((x): x is string => !!x) : [])))];
      const grads = model.backward(tape, new Map([[out, c]]), new Set(names));
      for (const n of names) {
        const w = weights.get(n)!, gr = grads.get(n);
        assert.ok(gr, `${n}: no gradient`);
        const norm = Math.hypot(...gr);
        if (norm === 0) continue; // e.g. a bias no logit depends on
        // the derivative along the gradient's direction is its norm
        const w0 = w.slice(), h = 1e-3 * Math.max(...w0.map(Math.abs));
        const at = (s: number) => {
          for (let i = 0; i < w.length; i++) w[i] = w0[i] + (s * h * gr[i]) / norm;
          return loss();
        };
        const fd = (at(1) - at(-1)) / (2 * h);
        w.set(w0);
        assert.ok(Math.abs(fd - norm) <= 2e-2 * norm, `${n}: finite difference ${fd} vs gradient norm ${norm}`);
      }
    }));
  }
}

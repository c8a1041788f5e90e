import { test } from "node:test";
import assert from "node:assert/strict";
import { opLayer } from "../../src/graph/ir.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { printGraph } from "../../src/graph/printer.js";
import { fusedName } from "../../src/graph/rewrite.js";
import { kernelsByLayer, kernelsPerLayer } from "../../src/graph/stats.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { VARIANTS, variantCheckpoint } from "./graph-util.js";

test("the printer shows each op with shapes and attributes; fused ops read as such", () => {
  const plain = buildLlamaGraph(variantCheckpoint(VARIANTS["qwen2 qkv bias"]).config);
  const text = printGraph(runPasses(plain).graph, (op) => opLayer(op) === 0);
  assert.match(text, /l0\.qkv \[T,64\] = matmul\(l0\.attn_in \[T,32\], blk\.0\.attn_qkv\.weight \[64,32\], blk\.0\.attn_qkv\.bias \[64\]\)/);
  assert.match(text, /l0\.attn \[T,32\], l0\.q_rot \[T,32\] = attention_qkv\(l0\.qkv \[T,64\], rope\.inv_freq \[4\]; layer=0 heads=4\/2x8 rope=neox\/8\)/);
  assert.match(text, /l0\.act \[T,40\] = silu_mul\(l0\.gate_up \[T,80\]\)/);
  assert.match(text, /outputs: logits/);
  assert.match(printGraph(plain), /kv_write\(l0\.k_rot \[T,16\], l0\.v \[T,16\]; layer=0\)/);
});

test("fused names keep the common affixes; kernel counts per layer", () => {
  const taken = new Map([["x.qkv", 1]]);
  assert.equal(fusedName(["blk.3.attn_q.weight", "blk.3.attn_k.weight", "blk.3.attn_v.weight"], new Map()), "blk.3.attn_qkv.weight");
  assert.equal(fusedName(["l0.gate", "l0.up"], new Map()), "l0.gate_up");
  assert.equal(fusedName(["x.q", "x.k", "x.v"], taken), "x.qkv#2");
  const plain = buildLlamaGraph(variantCheckpoint({}).config);
  assert.deepEqual(kernelsByLayer(plain), [17, 17]);
  assert.deepEqual(kernelsByLayer(runPasses(plain).graph), [8, 9]); // the last layer keeps its residual add
  assert.equal(kernelsPerLayer(runPasses(plain).graph), 8);
});

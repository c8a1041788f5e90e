/**
 * The Llama family as one parameterized decoder: Llama 1/2/3, Mistral (sliding window),
 * Qwen2 (qkv bias), Qwen3 (q/k RMSNorm), SmolLM; GQA/MQA; tied or separate head.
 * Builds the unfused graph of one step; fusion is the passes' business, not this file's.
 */
import type { ModelConfig } from "../checkpoint/config.js";
import { OUTPUT, OUTPUT_NORM, TOKEN_EMBD, layerTensor } from "../checkpoint/names.js";
import { GraphBuilder } from "../graph/builder.js";
import type { Graph } from "../graph/ir.js";

export const LOGITS = "logits";

export function buildLlamaGraph(c: ModelConfig): Graph {
  const g = new GraphBuilder();
  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const w = (layer: number, t: Parameters<typeof layerTensor>[1], shape: number[]) =>
    g.weight(layerTensor(layer, t), shape);

  g.weight(TOKEN_EMBD, [c.vocabSize, H]);
  let x = g.embedding("x.embed", TOKEN_EMBD); // [T, H] residual stream
  const invFreq = g.ropeInvFreq("rope.inv_freq", c.rope); // [1, rope.dim / 2], shared by every layer

  for (let l = 0; l < c.numLayers; l++) {
    const p = `l${l}.`;
    // attention block
    const xn = g.rmsnorm(p + "attn_in", x, w(l, "attn_norm.weight", [H]), c.rmsNormEps);
    const bias = (t: "attn_q.bias" | "attn_k.bias" | "attn_v.bias", n: number) =>
      c.attentionBias ? w(l, t, [n]) : undefined;
    let q = g.matmul(p + "q", xn, w(l, "attn_q.weight", [qDim, H]), bias("attn_q.bias", qDim)); // [T, qDim]
    let k = g.matmul(p + "k", xn, w(l, "attn_k.weight", [kvDim, H]), bias("attn_k.bias", kvDim)); // [T, kvDim]
    const v = g.matmul(p + "v", xn, w(l, "attn_v.weight", [kvDim, H]), bias("attn_v.bias", kvDim)); // [T, kvDim]
    if (c.qkNorm) {
      q = g.rmsnorm(p + "q_normed", q, w(l, "attn_q_norm.weight", [c.headDim]), c.rmsNormEps, c.headDim);
      k = g.rmsnorm(p + "k_normed", k, w(l, "attn_k_norm.weight", [c.headDim]), c.rmsNormEps, c.headDim);
    }
    q = g.rope(p + "q_rot", q, invFreq, c.headDim, c.rope);
    k = g.rope(p + "k_rot", k, invFreq, c.headDim, c.rope);
    g.kvWrite(k, v, l);
    const att = g.attention(p + "attn", q, {
      layer: l,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
      scale: 1 / Math.sqrt(c.headDim),
      slidingWindow: c.slidingWindow,
    }); // [T, qDim]
    const o = g.matmul(p + "attn_out", att, w(l, "attn_output.weight", [H, qDim]));
    x = g.add(p + "x.attn", x, o);

    // feed-forward block (SwiGLU)
    const I = c.intermediateSize;
    const hn = g.rmsnorm(p + "ffn_in", x, w(l, "ffn_norm.weight", [H]), c.rmsNormEps);
    const gate = g.matmul(p + "gate", hn, w(l, "ffn_gate.weight", [I, H])); // [T, I]
    const up = g.matmul(p + "up", hn, w(l, "ffn_up.weight", [I, H])); // [T, I]
    const act = g.mul(p + "act", g.silu(p + "gate_act", gate), up); // silu(gate) * up
    const down = g.matmul(p + "ffn_out", act, w(l, "ffn_down.weight", [H, I]));
    x = g.add(p + "x.ffn", x, down);
  }

  // only the rows that need logits go through the final norm and the head
  const last = g.gatherRows("x.last", x); // [R, H]
  const xf = g.rmsnorm("x.final", last, g.weight(OUTPUT_NORM, [H]), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? TOKEN_EMBD : g.weight(OUTPUT, [c.vocabSize, H]);
  g.matmul(LOGITS, xf, head); // [R, vocab]
  return g.build([LOGITS]);
}

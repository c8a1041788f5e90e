/**
 * An independent, deliberately different forward pass for tests: whole sequence at
 * once, no KV cache, attention as a full score matrix with an explicit causal /
 * sliding-window mask. Returns logits for every position [T, vocab].
 */
import type { ModelConfig } from "../../src/checkpoint/config.js";

type W = (name: string) => Float32Array;

function linear(x: number[][], w: Float32Array, outDim: number, bias?: Float32Array): number[][] {
  const inDim = w.length / outDim;
  return x.map((row) =>
    Array.from({ length: outDim }, (_, o) => {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inDim; i++) s += row[i] * w[o * inDim + i];
      return s;
    }),
  );
}

function rms(v: number[], w: Float32Array, eps: number): number[] {
  const ms = v.reduce((a, b) => a + b * b, 0) / v.length;
  return v.map((x, i) => (x / Math.sqrt(ms + eps)) * w[i]);
}

function rotate(v: number[], pos: number, c: ModelConfig): number[] {
  // Builds the rotation as explicit cos/sin over pairs; the pairing mirrors HF (neox) or GPT-J (interleaved).
  const d = c.rope.dim;
  const out = [...v];
  for (let i = 0; i < d / 2; i++) {
    let freq = Math.pow(c.rope.theta, -(2 * i) / d);
    if (c.rope.scaling.type === "linear") freq /= c.rope.scaling.factor;
    const a = c.rope.style === "neox" ? i : 2 * i;
    const b = c.rope.style === "neox" ? i + d / 2 : 2 * i + 1;
    const th = pos * freq;
    out[a] = v[a] * Math.cos(th) - v[b] * Math.sin(th);
    out[b] = v[b] * Math.cos(th) + v[a] * Math.sin(th);
  }
  return out;
}

export function denseForward(c: ModelConfig, w: W, tokens: number[]): number[][] {
  const T = tokens.length;
  const H = c.hiddenSize;
  const hd = c.headDim;
  const emb = w("token_embd.weight");
  let x = tokens.map((t) => Array.from(emb.subarray(t * H, (t + 1) * H)));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `blk.${l}.`;
    const b = (n: string) => (c.attentionBias ? w(p + n) : undefined);
    const xn = x.map((r) => rms(r, w(p + "attn_norm.weight"), c.rmsNormEps));
    const q = linear(xn, w(p + "attn_q.weight"), c.numHeads * hd, b("attn_q.bias"));
    const k = linear(xn, w(p + "attn_k.weight"), c.numKvHeads * hd, b("attn_k.bias"));
    const v = linear(xn, w(p + "attn_v.weight"), c.numKvHeads * hd, b("attn_v.bias"));
    const head = (m: number[][], t: number, h: number) => m[t].slice(h * hd, (h + 1) * hd);
    const att = x.map(() => new Array<number>(c.numHeads * hd).fill(0));
    for (let h = 0; h < c.numHeads; h++) {
      const kh = Math.floor(h / (c.numHeads / c.numKvHeads));
      const prep = (m: number[][], hh: number, t: number, norm?: string) => {
        const raw = head(m, t, hh);
        return rotate(norm && c.qkNorm ? rms(raw, w(p + norm), c.rmsNormEps) : raw, t, c);
      };
      const Q = Array.from({ length: T }, (_, t) => prep(q, h, t, "attn_q_norm.weight"));
      const K = Array.from({ length: T }, (_, t) => prep(k, kh, t, "attn_k_norm.weight"));
      for (let i = 0; i < T; i++) {
        // mask: causal, and within the sliding window when there is one
        const allowed = (j: number) => j <= i && (c.slidingWindow === null || i - j < c.slidingWindow);
        const s = K.map((kj, j) => (allowed(j) ? kj.reduce((a, kv, d) => a + kv * Q[i][d], 0) / Math.sqrt(hd) : -Infinity));
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b2) => a + b2, 0);
        for (let d = 0; d < hd; d++) {
          att[i][h * hd + d] = e.reduce((a, ej, j) => a + (ej / z) * head(v, j, kh)[d], 0);
        }
      }
    }
    const o = linear(att, w(p + "attn_output.weight"), H);
    x = x.map((r, t) => r.map((val, i) => val + o[t][i]));
    const hn = x.map((r) => rms(r, w(p + "ffn_norm.weight"), c.rmsNormEps));
    const g = linear(hn, w(p + "ffn_gate.weight"), c.intermediateSize);
    const u = linear(hn, w(p + "ffn_up.weight"), c.intermediateSize);
    const a = g.map((r, t) => r.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[t][i]));
    const d = linear(a, w(p + "ffn_down.weight"), H);
    x = x.map((r, t) => r.map((val, i) => val + d[t][i]));
  }
  const xf = x.map((r) => rms(r, w("output_norm.weight"), c.rmsNormEps));
  return linear(xf, w(c.tieWordEmbeddings ? "token_embd.weight" : "output.weight"), c.vocabSize);
}

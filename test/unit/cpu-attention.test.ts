/**
 * The CPU RoPE, paged attention and fused attention_qkv kernels against the reference
 * ops on ragged steps (prefill chunks and decodes mixed, blocks out of order): GQA and
 * MQA, sliding windows, neox / interleaved / partial rotary, Qwen3 q/k norms.
 */
import { after, test } from "node:test";
import { attentionQkv as refAttentionQkv } from "../../src/backends/reference/fused.js";
import { KvPlane } from "../../src/backends/reference/kv-plane.js";
import * as ref from "../../src/backends/reference/ops.js";
import { ropeInvFreq } from "../../src/backends/reference/rope.js";
import * as k from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import type { AttentionGeometry, RotaryDims } from "../../src/graph/ir.js";
import { assertClose, randomF32 } from "./cpu-util.js";
import { BLOCK_SIZE, scenario } from "./graph-util.js";

const rt = new CpuRuntime({ threads: 2, spin: 2000 });
after(() => rt.close());

const SLOTS = 16 * BLOCK_SIZE;

/** A reference cache plane holding `rows` [SLOTS, kvDim]. */
function plane(rows: Float32Array, kvDim: number): KvPlane {
  const p = new KvPlane("f32", SLOTS, kvDim);
  for (let s = 0; s < SLOTS; s++) p.write(s, rows.subarray(s * kvDim, (s + 1) * kvDim));
  return p;
}

function planeRows(p: KvPlane): Float32Array {
  const out = new Float32Array(SLOTS * p.kvDim);
  for (let s = 0; s < SLOTS; s++) out.set(p.row(s), s * p.kvDim);
  return out;
}

const CASES: { name: string; heads: number; kvHeads: number; headDim: number; window: number | null; rotary: RotaryDims; norm: boolean }[] = [
  { name: "MHA neox", heads: 4, kvHeads: 4, headDim: 8, window: null, rotary: { style: "neox", dim: 8 }, norm: false },
  { name: "GQA interleaved, window 3", heads: 6, kvHeads: 2, headDim: 12, window: 3, rotary: { style: "interleaved", dim: 12 }, norm: false },
  { name: "MQA partial rotary, q/k norm", heads: 4, kvHeads: 1, headDim: 16, window: null, rotary: { style: "neox", dim: 4 }, norm: true },
  { name: "headDim 64, window 1", heads: 2, kvHeads: 1, headDim: 64, window: 1, rotary: { style: "neox", dim: 64 }, norm: false },
];

for (const c of CASES) {
  const g: AttentionGeometry = { layer: 0, numHeads: c.heads, numKvHeads: c.kvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), slidingWindow: c.window };
  const qDim = c.heads * c.headDim;
  const kvDim = c.kvHeads * c.headDim;
  const invFreq = Float32Array.from(ropeInvFreq({ theta: 10000, style: c.rotary.style, dim: c.rotary.dim, scaling: { type: "none" } }));

  test(`rope ${c.name}`, () => {
    const positions = Int32Array.from([0, 1, 5, 17, 300, 4095, 2]);
    const x = randomF32(positions.length * qDim, 11);
    const want = new Float32Array(x.length);
    ref.rope(want, x, positions, invFreq, c.headDim, c.rotary);
    assertClose(k.rope(rt, x, positions, invFreq, c.headDim, c.rotary), want, 2e-6, "rope");
  });

  test(`attention and attention_qkv ${c.name}, three ragged steps`, () => {
    const cpuCache = { k: randomF32(SLOTS * kvDim, 1), v: randomF32(SLOTS * kvDim, 2) };
    const refCache = { k: plane(cpuCache.k, kvDim), v: plane(cpuCache.v, kvDim) };
    const qNorm = c.norm ? randomF32(c.headDim, 3) : undefined;
    const kNorm = c.norm ? randomF32(c.headDim, 4) : undefined;
    scenario().forEach((step, i) => {
      const T = step.numTokens;
      // plain attention over the cache as it stands
      const q = randomF32(T * qDim, 10 + i, 2);
      const want = new Float32Array(T * qDim);
      ref.attention(want, q, refCache, step, BLOCK_SIZE, g);
      assertClose(k.attention(rt, q, cpuCache, step, BLOCK_SIZE, g), want, 2e-5, `step ${i} attention`);
      // fused: writes this step's K/V, then attends
      const qkv = randomF32(T * (qDim + 2 * kvDim), 20 + i, 2);
      const [out, qRot] = [new Float32Array(T * qDim), new Float32Array(T * qDim)];
      refAttentionQkv(out, qRot, qkv, invFreq, qNorm, kNorm, refCache, step, BLOCK_SIZE, { ...g, rotary: c.rotary, eps: 1e-6 });
      const [gotOut, gotQ] = k.attentionQkv(rt, qkv, invFreq, qNorm, kNorm, cpuCache, step, BLOCK_SIZE, { ...g, rotary: c.rotary, eps: 1e-6 });
      assertClose(gotQ, qRot, 2e-5, `step ${i} rotated q`);
      assertClose(cpuCache.k, planeRows(refCache.k), 2e-5, `step ${i} cached k`);
      assertClose(cpuCache.v, planeRows(refCache.v), 0, `step ${i} cached v`);
      assertClose(gotOut, out, 2e-5, `step ${i} attention_qkv`);
    });
  });
}

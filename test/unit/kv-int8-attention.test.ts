/**
 * The CPU paged attention and fused attention_qkv kernels over an int8 KV cache against
 * the reference ops over an int8 KvPlane, on ragged steps over several blocks (out of
 * order): odd head dims, GQA, MQA, a sliding window, headDim 64 (the SIMD path).
 * The cpu cache travels as its bytes: per slot, per KV head [scale f32][headDim int8].
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
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

/** The cpu layout of an int8 plane: [SLOTS][kvHeads][4 + headDim] bytes. */
function toCpu(p: KvPlane): Uint8Array {
  const hb = 4 + p.headDim;
  const out = new Uint8Array(SLOTS * p.numKvHeads * hb);
  const dv = new DataView(out.buffer);
  for (let s = 0; s < SLOTS; s++) {
    const { q, scales } = p.int8Slot(s);
    for (let h = 0; h < p.numKvHeads; h++) {
      const at = (s * p.numKvHeads + h) * hb;
      dv.setFloat32(at, scales[h], true);
      out.set(new Uint8Array(q.buffer, q.byteOffset + h * p.headDim, p.headDim), at + 4);
    }
  }
  return out;
}

/** An int8 plane holding the cpu bytes. */
function fromCpu(bytes: Uint8Array, kvHeads: number, headDim: number): KvPlane {
  const p = new KvPlane("int8", SLOTS, kvHeads * headDim, headDim);
  const hb = 4 + headDim;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let s = 0; s < SLOTS; s++) {
    const { q, scales } = p.int8Slot(s);
    for (let h = 0; h < kvHeads; h++) {
      const at = (s * kvHeads + h) * hb;
      scales[h] = dv.getFloat32(at, true);
      q.set(new Int8Array(bytes.buffer, bytes.byteOffset + at + 4, headDim), h * headDim);
    }
  }
  return p;
}

function rows(p: KvPlane): Float32Array {
  const out = new Float32Array(SLOTS * p.kvDim);
  for (let s = 0; s < SLOTS; s++) out.set(p.row(s), s * p.kvDim);
  return out;
}

function scalesOf(p: KvPlane): Float32Array {
  const out = new Float32Array(SLOTS * p.numKvHeads);
  for (let s = 0; s < SLOTS; s++) out.set(p.int8Slot(s).scales, s * p.numKvHeads);
  return out;
}

const CASES: { name: string; heads: number; kvHeads: number; headDim: number; window: number | null; rotary: RotaryDims }[] = [
  { name: "GQA 6:2, headDim 5", heads: 6, kvHeads: 2, headDim: 5, window: null, rotary: { style: "neox", dim: 4 } },
  { name: "MHA 3:3, headDim 13, window 3", heads: 3, kvHeads: 3, headDim: 13, window: 3, rotary: { style: "interleaved", dim: 12 } },
  { name: "MQA 4:1, headDim 20", heads: 4, kvHeads: 1, headDim: 20, window: null, rotary: { style: "neox", dim: 20 } },
  { name: "GQA 4:2, headDim 64", heads: 4, kvHeads: 2, headDim: 64, window: null, rotary: { style: "neox", dim: 64 } },
];

for (const c of CASES) {
  const g: AttentionGeometry = { layer: 0, numHeads: c.heads, numKvHeads: c.kvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), slidingWindow: c.window };
  const qDim = c.heads * c.headDim;
  const kvDim = c.kvHeads * c.headDim;
  const invFreq = Float32Array.from(ropeInvFreq({ theta: 10000, style: c.rotary.style, dim: c.rotary.dim, scaling: { type: "none" } }));

  test(`int8 KV: cpu attention and attention_qkv match the reference, ${c.name}, three ragged steps`, () => {
    const refCache = { k: new KvPlane("int8", SLOTS, kvDim, c.headDim), v: new KvPlane("int8", SLOTS, kvDim, c.headDim) };
    const [kr, vr] = [randomF32(SLOTS * kvDim, 1, 3), randomF32(SLOTS * kvDim, 2, 0.5)];
    for (let s = 0; s < SLOTS; s++) {
      refCache.k.write(s, kr.subarray(s * kvDim, (s + 1) * kvDim));
      refCache.v.write(s, vr.subarray(s * kvDim, (s + 1) * kvDim));
    }
    const cpuCache = { k: toCpu(refCache.k), v: toCpu(refCache.v) };
    scenario().forEach((step, i) => {
      const T = step.numTokens;
      // plain attention over the cache as it stands
      const q = randomF32(T * qDim, 10 + i, 2);
      const want = new Float32Array(T * qDim);
      ref.attention(want, q, refCache, step, BLOCK_SIZE, g);
      assertClose(k.attention(rt, q, cpuCache, step, BLOCK_SIZE, g, "int8"), want, 2e-5, `step ${i} attention`);

      // fused: quantizes this step's K/V into the cache, then attends
      const qkv = randomF32(T * (qDim + 2 * kvDim), 20 + i, 2);
      const args = { ...g, rotary: c.rotary, eps: 1e-6 };
      const [out, qRot] = [new Float32Array(T * qDim), new Float32Array(T * qDim)];
      refAttentionQkv(out, qRot, qkv, invFreq, undefined, undefined, refCache, step, BLOCK_SIZE, args);
      const [gotOut, gotQ] = k.attentionQkv(rt, qkv, invFreq, undefined, undefined, cpuCache, step, BLOCK_SIZE, args, "int8");
      assertClose(gotQ, qRot, 2e-5, `step ${i} rotated q`);
      // V is quantized from the same floats: the same bytes
      assert.deepEqual(cpuCache.v, toCpu(refCache.v), `step ${i}: cached v bytes`);
      // K went through each side's RoPE (equal to ~1e-6): scales equal to that, values within one step
      const gotK = fromCpu(cpuCache.k, c.kvHeads, c.headDim);
      const sc = scalesOf(refCache.k);
      assertClose(scalesOf(gotK), sc, 1e-5, `step ${i}: k scales`);
      const [gk, wk] = [rows(gotK), rows(refCache.k)];
      for (let j = 0; j < gk.length; j++) {
        const step1 = sc[Math.floor(j / c.headDim)];
        assert.ok(Math.abs(gk[j] - wk[j]) <= step1 * 1.001 + 1e-6, `step ${i}: cached k ${j}: ${gk[j]} vs ${wk[j]} (step ${step1})`);
      }
      // the cpu output is attention over the cpu's own cache (tight), and near the reference's
      const overCpu = new Float32Array(T * qDim);
      ref.attention(overCpu, gotQ, { k: gotK, v: refCache.v }, step, BLOCK_SIZE, g);
      assertClose(gotOut, overCpu, 2e-5, `step ${i} attention_qkv over the cpu cache`);
      assertClose(gotOut, out, 2e-2, `step ${i} attention_qkv vs reference`);
      cpuCache.k.set(toCpu(refCache.k)); // the next step's plain attention compares over one cache
    });
  });
}

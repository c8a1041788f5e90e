/**
 * The CPU RoPE, paged attention and fused attention_qkv kernels against the reference
 * ops on ragged steps (prefill chunks and decodes mixed, blocks out of order): GQA and
 * MQA, sliding windows, neox / interleaved / partial rotary, Qwen3 q/k norms. Then the
 * tiled kernel on long contexts (300-token prefill, ragged steps, chunked prefill after a
 * cached prefix, windows, GQA 1/2/4, MQA 32, headDim 16..256, every KV dtype, 1 and 2
 * threads) and decode with its keys split over 2 and 4 threads.
 */
import { after, test } from "node:test";
import { attentionQkv as refAttentionQkv } from "../../src/backends/reference/fused.js";
import { KvPlane } from "../../src/backends/reference/kv-plane.js";
import * as ref from "../../src/backends/reference/ops.js";
import { ropeInvFreq } from "../../src/backends/reference/rope.js";
import * as k from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import type { KvDType } from "../../src/backends/backend.js";
import { f32ToBf16, f32ToF16 } from "../../src/checkpoint/fp16.js";
import type { AttentionGeometry, RotaryDims } from "../../src/graph/ir.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
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

// ---- the tiled / split-KV kernel on long contexts: every KV dtype, 1, 2 and 4 threads ----

const rt1 = new CpuRuntime({ threads: 1, spin: 2000 });
const rt4 = new CpuRuntime({ threads: 4, spin: 2000 });
after(() => (rt1.close(), rt4.close()));

const LONG_BLOCK = 16;
const LONG_BLOCKS = 96;
const LONG_SLOTS = LONG_BLOCK * LONG_BLOCKS;
const KV_DTYPES = ["f32", "f16", "bf16", "int8"] as const;

/** A step of sequences with `cached` tokens already in the cache and `fresh` new ones each; blocks dealt out of order. */
function longStep(seqs: { cached: number; fresh: number }[]): StepBatch {
  const order = Array.from({ length: LONG_BLOCKS }, (_, i) => (i * 37 + 11) % LONG_BLOCKS); // 37 is prime to 96: a permutation
  let nextBlock = 0;
  const T = seqs.reduce((n, s) => n + s.fresh, 0);
  const step: StepBatch = { numTokens: T, tokenIds: new Int32Array(T), positions: new Int32Array(T), seqStarts: new Int32Array(seqs.length + 1), contextLens: new Int32Array(seqs.length), blockTables: [], slotMapping: new Int32Array(T), logitRows: new Int32Array(0) };
  let t = 0;
  seqs.forEach((s, i) => {
    const ctx = s.cached + s.fresh;
    const table = Int32Array.from({ length: Math.ceil(ctx / LONG_BLOCK) }, () => order[nextBlock++]);
    if (nextBlock > LONG_BLOCKS) throw new Error("longStep: not enough blocks");
    step.blockTables.push(table);
    step.contextLens[i] = ctx;
    step.seqStarts[i] = t;
    for (let p = s.cached; p < ctx; p++, t++) {
      step.positions[t] = p;
      step.slotMapping[t] = table[Math.floor(p / LONG_BLOCK)] * LONG_BLOCK + (p % LONG_BLOCK);
    }
  });
  step.seqStarts[seqs.length] = T;
  return step;
}

/** The bytes the cpu kernels read for a reference plane (layout: assembly/kv.ts). */
function cpuBytes(p: KvPlane, dt: KvDType, headDim: number): Float32Array | Uint8Array {
  const kvDim = p.kvDim;
  if (dt === "f32") return planeRowsOf(p);
  if (dt === "int8") {
    const heads = kvDim / headDim;
    const hb = 4 + headDim;
    const out = new Uint8Array(p.numSlots * heads * hb);
    const dv = new DataView(out.buffer);
    for (let s = 0; s < p.numSlots; s++) {
      const { q, scales } = p.int8Slot(s);
      for (let h = 0; h < heads; h++) {
        dv.setFloat32((s * heads + h) * hb, scales[h], true);
        out.set(new Uint8Array(q.buffer, q.byteOffset + h * headDim, headDim), (s * heads + h) * hb + 4);
      }
    }
    return out;
  }
  // 16-bit: the row values are exactly representable, so encoding them again gives the stored bits
  const rows = planeRowsOf(p);
  const bits = new Uint16Array(rows.length);
  for (let i = 0; i < rows.length; i++) bits[i] = dt === "f16" ? f32ToF16(rows[i]) : f32ToBf16(rows[i]);
  return new Uint8Array(bits.buffer);
}

function planeRowsOf(p: KvPlane): Float32Array {
  const out = new Float32Array(p.numSlots * p.kvDim);
  for (let s = 0; s < p.numSlots; s++) out.set(p.row(s), s * p.kvDim);
  return out;
}

const LONG_CASES: { name: string; heads: number; kvHeads: number; headDim: number; window: number | null; qScale: number; seqs: { cached: number; fresh: number }[] }[] = [
  { name: "one 300-token prefill (T not a multiple of the tile), MHA, headDim 16", heads: 4, kvHeads: 4, headDim: 16, window: null, qScale: 2, seqs: [{ cached: 0, fresh: 300 }] },
  {
    name: "ragged: prefill, chunk after a 200-token prefix, decode, short prefill; GQA 2, headDim 64",
    heads: 8,
    kvHeads: 4,
    headDim: 64,
    window: null,
    qScale: 2,
    seqs: [{ cached: 0, fresh: 37 }, { cached: 200, fresh: 45 }, { cached: 129, fresh: 1 }, { cached: 0, fresh: 13 }],
  },
  { name: "chunked prefill, sliding window 50, GQA 4, headDim 80, peaky softmax", heads: 8, kvHeads: 2, headDim: 80, window: 50, qScale: 8, seqs: [{ cached: 150, fresh: 70 }, { cached: 0, fresh: 61 }] },
  { name: "MQA 4, headDim 128: chunk after 280 and a decode", heads: 4, kvHeads: 1, headDim: 128, window: null, qScale: 2, seqs: [{ cached: 280, fresh: 21 }, { cached: 17, fresh: 1 }] },
  { name: "MQA 32, headDim 256 (group in chunks of rows)", heads: 32, kvHeads: 1, headDim: 256, window: null, qScale: 1, seqs: [{ cached: 100, fresh: 3 }, { cached: 0, fresh: 5 }] },
];

const DECODE_CASES: { name: string; heads: number; kvHeads: number; headDim: number; window: number | null; seqs: { cached: number; fresh: number }[] }[] = [
  { name: "one sequence, MQA, context 301", heads: 4, kvHeads: 1, headDim: 64, window: null, seqs: [{ cached: 300, fresh: 1 }] },
  { name: "two sequences (contexts 700 and 40), GQA 4:2, headDim 80", heads: 4, kvHeads: 2, headDim: 80, window: null, seqs: [{ cached: 699, fresh: 1 }, { cached: 39, fresh: 1 }] },
  { name: "one sequence, window 100, MHA 1:1, headDim 16", heads: 1, kvHeads: 1, headDim: 16, window: 100, seqs: [{ cached: 400, fresh: 1 }] },
  // one row per unit (MHA decode): eight keys a pass and 32 outputs a pass, with their tails
  { name: "one sequence, MHA 3:3, headDim 64, context 301", heads: 3, kvHeads: 3, headDim: 64, window: null, seqs: [{ cached: 300, fresh: 1 }] },
  { name: "two sequences (contexts 150 and 13), MHA 2:2, headDim 36", heads: 2, kvHeads: 2, headDim: 36, window: null, seqs: [{ cached: 149, fresh: 1 }, { cached: 12, fresh: 1 }] },
  { name: "one sequence, MHA 2:2, headDim 18 (not whole vectors), window 77", heads: 2, kvHeads: 2, headDim: 18, window: 77, seqs: [{ cached: 200, fresh: 1 }] },
  { name: "one sequence, MHA 2:2, headDim 40, context 9", heads: 2, kvHeads: 2, headDim: 40, window: null, seqs: [{ cached: 8, fresh: 1 }] },
  // a decode unit takes every KV head while they fit its row and output budget (32 rows, 4096 floats)
  { name: "two sequences, GQA 32:8, headDim 128 (a unit's budget exactly), window 90", heads: 32, kvHeads: 8, headDim: 128, window: 90, seqs: [{ cached: 240, fresh: 1 }, { cached: 61, fresh: 1 }] },
  { name: "three sequences, MHA 40:40, headDim 16 (more heads than a unit holds: a unit a head)", heads: 40, kvHeads: 40, headDim: 16, window: null, seqs: [{ cached: 70, fresh: 1 }, { cached: 0, fresh: 1 }, { cached: 33, fresh: 1 }] },
];

function runLong(c: { heads: number; kvHeads: number; headDim: number; window: number | null; seqs: { cached: number; fresh: number }[] }, dt: KvDType, qScale: number, runtimes: [string, CpuRuntime][]): void {
  const g: AttentionGeometry = { layer: 0, numHeads: c.heads, numKvHeads: c.kvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), slidingWindow: c.window };
  const kvDim = c.kvHeads * c.headDim;
  const refCache = { k: new KvPlane(dt, LONG_SLOTS, kvDim, c.headDim), v: new KvPlane(dt, LONG_SLOTS, kvDim, c.headDim) };
  const [kr, vr] = [randomF32(LONG_SLOTS * kvDim, 31, 2), randomF32(LONG_SLOTS * kvDim, 32)];
  for (let s = 0; s < LONG_SLOTS; s++) {
    refCache.k.write(s, kr.subarray(s * kvDim, (s + 1) * kvDim));
    refCache.v.write(s, vr.subarray(s * kvDim, (s + 1) * kvDim));
  }
  const cpuCache = { k: cpuBytes(refCache.k, dt, c.headDim), v: cpuBytes(refCache.v, dt, c.headDim) };
  const step = longStep(c.seqs);
  const q = randomF32(step.numTokens * c.heads * c.headDim, 33, qScale);
  const want = new Float32Array(q.length);
  ref.attention(want, q, refCache, step, LONG_BLOCK, g);
  for (const [name, r] of runtimes) assertClose(k.attention(r, q, cpuCache, step, LONG_BLOCK, g, dt), want, 2e-5, `${dt} KV, ${name}`);
}

for (const c of LONG_CASES) {
  test(`long attention = reference: ${c.name}; every KV dtype, 1 and 2 threads`, () => {
    for (const dt of KV_DTYPES) runLong(c, dt, c.qScale, [["1 thread", rt1], ["2 threads", rt]]);
  });
}

for (const c of DECODE_CASES) {
  test(`decode split over threads = reference: ${c.name}; every KV dtype, 1, 2 and 4 threads`, () => {
    for (const dt of KV_DTYPES) runLong(c, dt, 2, [["1 thread", rt1], ["2 threads", rt], ["4 threads", rt4]]);
  });
}

test("decode split over threads: a cache position that only one split sees moves the output (the merge weighs every split)", () => {
  // one sequence, one KV head: the keys go to every thread of rt4 in quarters; a large value in one early and one late key must both show
  const c = { heads: 2, kvHeads: 1, headDim: 16, window: null, seqs: [{ cached: 399, fresh: 1 }] };
  const g: AttentionGeometry = { layer: 0, numHeads: 2, numKvHeads: 1, headDim: 16, scale: 0.25, slidingWindow: null };
  const kv = new Float32Array(LONG_SLOTS * 16);
  const v = randomF32(LONG_SLOTS * 16, 41);
  const step = longStep(c.seqs);
  const table = step.blockTables[0];
  const slot = (p: number) => table[Math.floor(p / LONG_BLOCK)] * LONG_BLOCK + (p % LONG_BLOCK);
  for (const p of [3, 390]) kv.fill(1, slot(p) * 16, slot(p) * 16 + 16); // q = 1s: these two keys dominate
  const q = new Float32Array(2 * 16).fill(1);
  const refCache = { k: plane2(kv, LONG_SLOTS), v: plane2(v, LONG_SLOTS) };
  const want = new Float32Array(q.length);
  ref.attention(want, q, refCache, step, LONG_BLOCK, g);
  for (const r of [rt1, rt, rt4]) assertClose(k.attention(r, q, { k: kv, v }, step, LONG_BLOCK, g), want, 2e-5, `${r.threads} threads`);
});

function plane2(rows: Float32Array, slots: number): KvPlane {
  const p = new KvPlane("f32", slots, 16);
  for (let s = 0; s < slots; s++) p.write(s, rows.subarray(s * 16, (s + 1) * 16));
  return p;
}

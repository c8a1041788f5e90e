/**
 * Each kernel as a plain function over typed arrays: copies the inputs into the
 * runtime's memory, runs one call, copies the output back. For tests (every kernel
 * against the reference ops) and micro-benchmarks; the backend calls kernels in
 * programs over buffers that live in shared memory instead.
 */
import { kvRowBytes, type KvDType } from "../backend.js";
import type { AttentionGeometry, RotaryDims } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import type { PackedMatrix } from "../../quant/packed.js";
import type { PackedWeight } from "./layout.js";
import { placePacked } from "./packed.js";
import { DTYPE_CODE, ELEMENTWISE, KV_DTYPE_CODE, OP, ROPE_STYLE, fbits } from "./program.js";
import type { CpuRuntime } from "./runtime.js";
import { StepData } from "./step-data.js";

type Input = Float32Array | Int32Array | Uint8Array;

/** Runs `body` with temporary buffers: `put` copies an input in, `make` allocates an output. */
function session<R>(rt: CpuRuntime, body: (put: (a: Input) => number, make: (bytes: number) => number) => R): R {
  const mark = rt.heap.mark();
  try {
    const put = (a: Input) => {
      const p = rt.heap.alloc(a.byteLength + 16);
      rt.heap.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      return p;
    };
    return body(put, (bytes) => rt.heap.alloc(bytes + 16));
  } finally {
    rt.heap.release(mark);
  }
}

function runOne(rt: CpuRuntime, op: number, ...args: number[]): void {
  rt.program.reset().emit(op, ...args);
  rt.run();
}

/** out [T, N] = x [T, K] @ w^T (+ bias) */
export function matmul(rt: CpuRuntime, x: Float32Array, w: PackedWeight, bias: Float32Array | undefined, T: number): Float32Array {
  const [N, K] = w.shape;
  return session(rt, (put, make) => {
    const out = make(T * N * 4);
    runOne(rt, OP.MATMUL, out, put(x), put(w.bytes), DTYPE_CODE[w.dtype], bias ? put(bias) : 0, T, K, N, w.colBlock ?? 0);
    return rt.heap.f32(out, T * N).slice();
  });
}

/** out [T, N] = x [T, K] @ w^T (+ bias), w packed int8 / int4 as it is (assembly/qmatmul.ts). */
export function matmulPacked(rt: CpuRuntime, x: Float32Array, w: PackedMatrix, bias: Float32Array | undefined, T: number): Float32Array {
  const { rows: N, cols: K } = w;
  return session(rt, (put, make) => {
    const out = make(T * N * 4);
    const { ptr, slot } = placePacked(rt.heap, "w", w, { lanes: rt.simd === "relaxed" });
    runOne(rt, OP.MATMUL_Q, out, put(x), ptr, slot.scales, slot.zeros, slot.code, slot.groupSize, bias ? put(bias) : 0, T, K, N);
    return rt.heap.f32(out, T * N).slice();
  });
}

/** Rows [n0, n1) of packed w as f32 [n1 - n0, K], by the BLAS path's dequantizer (OP.DEQUANT_ROWS). */
export function dequantPackedRows(rt: CpuRuntime, w: PackedMatrix, n0: number, n1: number): Float32Array {
  const K = w.cols;
  return session(rt, (_put, make) => {
    const out = make((n1 - n0) * K * 4);
    const { ptr, slot } = placePacked(rt.heap, "w", w, { lanes: rt.simd === "relaxed" });
    runOne(rt, OP.DEQUANT_ROWS, out, ptr, slot.scales, slot.zeros, slot.code, slot.groupSize, K, n0, n1);
    return rt.heap.f32(out, (n1 - n0) * K).slice();
  });
}

/** RMSNorm of each `group` values of x. */
export function rmsnorm(rt: CpuRuntime, x: Float32Array, weight: Float32Array, eps: number, group: number): Float32Array {
  return session(rt, (put, make) => {
    const out = make(x.byteLength);
    runOne(rt, OP.RMSNORM, out, put(x), put(weight), x.length / group, group, fbits(eps));
    return rt.heap.f32(out, x.length).slice();
  });
}

/** [out, sum] of add+RMSNorm over rows of weight.length. */
export function addRmsnorm(rt: CpuRuntime, a: Float32Array, b: Float32Array, weight: Float32Array, eps: number): [Float32Array, Float32Array] {
  return session(rt, (put, make) => {
    const out = make(a.byteLength);
    const sum = make(a.byteLength);
    runOne(rt, OP.ADD_RMSNORM, out, sum, put(a), put(b), put(weight), a.length / weight.length, weight.length, fbits(eps));
    return [rt.heap.f32(out, a.length).slice(), rt.heap.f32(sum, a.length).slice()];
  });
}

export function elementwise(rt: CpuRuntime, kind: keyof typeof ELEMENTWISE, a: Float32Array, b?: Float32Array): Float32Array {
  return session(rt, (put, make) => {
    const out = make(a.byteLength);
    runOne(rt, OP.ELEMENTWISE, ELEMENTWISE[kind], out, put(a), b ? put(b) : 0, a.length);
    return rt.heap.f32(out, a.length).slice();
  });
}

/** silu(x[:, :I]) * x[:, I:] */
export function siluMul(rt: CpuRuntime, x: Float32Array, I: number): Float32Array {
  const rows = x.length / (2 * I);
  return session(rt, (put, make) => {
    const out = make(rows * I * 4);
    runOne(rt, OP.SILU_MUL, out, put(x), rows, I);
    return rt.heap.f32(out, rows * I).slice();
  });
}

/**
 * The paged-attention kernels over a step, with the cache given and returned (they write it):
 * f32 rows [slots, kvDim], or the bytes of another dtype's rows (layout: assembly/kv.ts).
 */
export interface AttentionIO {
  k: Float32Array | Uint8Array;
  v: Float32Array | Uint8Array;
}

const bytesOf = (a: Float32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function withStep<R>(rt: CpuRuntime, step: StepBatch, body: (stepPtr: number, put: (a: Input) => number, make: (b: number) => number) => R): R {
  return session(rt, (put, make) => {
    const sd = StepData.forStep(rt.heap, step);
    sd.write(step);
    return body(sd.ptr, put, make);
  });
}

/** The cache rows [slots, kvDim] (bytes, in kvDtype) that KV_WRITE makes of k and v [T, kvDim] at the given slots (slot t = row t here). */
export function kvWrite(rt: CpuRuntime, k: Float32Array, v: Float32Array, kvDim: number, headDim: number, kvDtype: KvDType): { k: Uint8Array; v: Uint8Array } {
  const T = k.length / kvDim;
  const rowBytes = kvRowBytes(kvDtype, kvDim / headDim, headDim);
  return session(rt, (put, make) => {
    const [kc, vc] = [make(T * rowBytes), make(T * rowBytes)];
    runOne(rt, OP.KV_WRITE, kc, vc, put(k), put(v), put(Int32Array.from({ length: T }, (_, t) => t)), T, kvDim, KV_DTYPE_CODE[kvDtype], headDim);
    return { k: rt.heap.u8(kc, T * rowBytes).slice(), v: rt.heap.u8(vc, T * rowBytes).slice() };
  });
}

/** Rotates x [T, cols] at the step's positions. */
export function rope(rt: CpuRuntime, x: Float32Array, positions: Int32Array, invFreq: Float32Array, headDim: number, rotary: RotaryDims): Float32Array {
  return session(rt, (put, make) => {
    const out = make(x.byteLength);
    runOne(rt, OP.ROPE, out, put(x), put(positions), put(invFreq), positions.length, x.length / positions.length, headDim, rotary.dim, ROPE_STYLE[rotary.style]);
    return rt.heap.f32(out, x.length).slice();
  });
}

/** The plain attention op: out for q [T, heads*headDim] over the cache (k, v [slots, kvDim] in kvDtype). */
export function attention(rt: CpuRuntime, q: Float32Array, cache: AttentionIO, step: StepBatch, blockSize: number, g: AttentionGeometry, kvDtype: KvDType = "f32"): Float32Array {
  return withStep(rt, step, (stepPtr, put, make) => {
    const out = make(q.byteLength);
    runOne(rt, OP.ATTENTION, out, put(q), put(cache.k), put(cache.v), stepPtr, g.numHeads, g.numKvHeads, g.headDim, fbits(g.scale), g.slidingWindow ?? 0, blockSize, KV_DTYPE_CODE[kvDtype]);
    return rt.heap.f32(out, q.length).slice();
  });
}

export interface QkvAttentionArgs extends AttentionGeometry {
  rotary: RotaryDims;
  eps: number;
}

/** The fused attention_qkv op: returns out and qRot, and updates cache.k / cache.v in place. */
export function attentionQkv(rt: CpuRuntime, qkv: Float32Array, invFreq: Float32Array, qNorm: Float32Array | undefined, kNorm: Float32Array | undefined, cache: AttentionIO, step: StepBatch, blockSize: number, g: QkvAttentionArgs, kvDtype: KvDType = "f32"): [Float32Array, Float32Array] {
  const dt = KV_DTYPE_CODE[kvDtype];
  const qDim = g.numHeads * g.headDim;
  const T = step.numTokens;
  return withStep(rt, step, (stepPtr, put, make) => {
    const out = make(T * qDim * 4);
    const qRot = make(T * qDim * 4);
    const kc = put(cache.k);
    const vc = put(cache.v);
    const sd = rt.heap.i32(stepPtr, 16);
    rt.program.reset();
    rt.program.emit(OP.QKV_PREP, qRot, put(qkv), kc, vc, sd[3], sd[8], put(invFreq), qNorm ? put(qNorm) : 0, kNorm ? put(kNorm) : 0, T, g.numHeads, g.numKvHeads, g.headDim, g.rotary.dim, ROPE_STYLE[g.rotary.style], fbits(g.eps), dt);
    rt.program.emit(OP.ATTENTION, out, qRot, kc, vc, stepPtr, g.numHeads, g.numKvHeads, g.headDim, fbits(g.scale), g.slidingWindow ?? 0, blockSize, dt);
    rt.run();
    bytesOf(cache.k).set(rt.heap.u8(kc, cache.k.byteLength));
    bytesOf(cache.v).set(rt.heap.u8(vc, cache.v.byteLength));
    return [rt.heap.f32(out, T * qDim).slice(), rt.heap.f32(qRot, T * qDim).slice()];
  });
}

/** Index of the largest value in each row of x [rows, cols]. */
export function argmax(rt: CpuRuntime, x: Float32Array, cols: number): Int32Array {
  const rows = x.length / cols;
  return session(rt, (put, make) => {
    const out = make(rows * 4);
    runOne(rt, OP.ARGMAX, out, put(x), rows, cols);
    return rt.heap.i32(out, rows).slice();
  });
}

/** The k largest values of x, descending, with their indices. */
export function topk(rt: CpuRuntime, x: Float32Array, k: number): { ids: Int32Array; values: Float32Array } {
  return session(rt, (put, make) => {
    const ids = make(k * 4);
    const vals = make(k * 4);
    runOne(rt, OP.TOPK, ids, vals, put(x), x.length, k);
    return { ids: rt.heap.i32(ids, k).slice(), values: rt.heap.f32(vals, k).slice() };
  });
}


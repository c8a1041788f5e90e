// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Rotary embedding (plain `rope` op) and the per-token front half of the fused
 * attention_qkv op: split packed q|k|v, optional per-head RMSNorm of q and k, RoPE,
 * and the K/V write into the paged cache (kv.ts layout). Split over tokens.
 */
import { activeThreads, arg, shareStart, DT_F32 } from "./simd";
import { kvRowBytes, storeKv } from "./kv";
import { rmsnorm } from "./norm";

export const STYLE_NEOX: i32 = 0;
export const STYLE_INTERLEAVED: i32 = 1;

/** cs[0 .. half) = cos, cs[half .. 2 half) = sin of pos * invFreq[i]; angles in f64 as the reference does. */
@inline function angles(cs: usize, pos: i32, invFreq: usize, half: i32): void {
  for (let i = 0; i < half; i++) {
    const a = <f64>pos * <f64>load<f32>(invFreq + (<usize>i << 2));
    store<f32>(cs + (<usize>i << 2), <f32>Math.cos(a));
    store<f32>(cs + (<usize>(i + half) << 2), <f32>Math.sin(a));
  }
}

/** Rotates `heads` heads of headDim floats at p in place, with the pairs of `style`. */
@inline function rotateHeads(p: usize, heads: i32, headDim: i32, half: i32, style: i32, cs: usize): void {
  for (let h = 0; h < heads; h++) {
    const hp = p + (<usize>(h * headDim) << 2);
    for (let i = 0; i < half; i++) {
      const c = load<f32>(cs + (<usize>i << 2));
      const s = load<f32>(cs + (<usize>(i + half) << 2));
      const a = hp + (<usize>(style == STYLE_INTERLEAVED ? 2 * i : i) << 2);
      const b = hp + (<usize>(style == STYLE_INTERLEAVED ? 2 * i + 1 : i + half) << 2);
      const x0 = load<f32>(a);
      const x1 = load<f32>(b);
      store<f32>(a, x0 * c - x1 * s);
      store<f32>(b, x0 * s + x1 * c);
    }
  }
}

/** out [T, cols] = rope(x) for cols = heads * headDim; rotDim of each head rotate. Safe in place. */
export function rope(tid: i32, nth: i32, scratch: usize, out: usize, x: usize, positions: usize, invFreq: usize, T: i32, cols: i32, headDim: i32, rotDim: i32, style: i32): void {
  const act = activeThreads(T, nth, 8);
  const t1 = shareStart(T, tid + 1, act, 1);
  const half = rotDim >> 1;
  for (let t = shareStart(T, tid, act, 1); t < t1; t++) {
    const row = <usize>t * <usize>cols << 2;
    if (out != x) memory.copy(out + row, x + row, <usize>cols << 2);
    angles(scratch, load<i32>(positions + (<usize>t << 2)), invFreq, half);
    rotateHeads(out + row, cols / headDim, headDim, half, style, scratch);
  }
}

/** Argument block of qkvPrep (i32 words; pointers are byte offsets). */
export const QP_QROT = 0, QP_QKV = 1, QP_KC = 2, QP_VC = 3, QP_POS = 4, QP_SLOTS = 5, QP_INVFREQ = 6, QP_QNORM = 7, QP_KNORM = 8;
export const QP_T = 9, QP_HEADS = 10, QP_KVHEADS = 11, QP_HEADDIM = 12, QP_ROT = 13, QP_STYLE = 14, QP_EPS = 15, QP_KVDT = 16;

/** For each token: qRot <- rope(norm(q)); cache K <- rope(norm(k)); cache V <- v. */
export function qkvPrep(tid: i32, nth: i32, scratch: usize, args: usize): void {
  const qRot = <usize>arg(args, QP_QROT), qkv = <usize>arg(args, QP_QKV), kc = <usize>arg(args, QP_KC), vc = <usize>arg(args, QP_VC);
  const positions = <usize>arg(args, QP_POS), slots = <usize>arg(args, QP_SLOTS), invFreq = <usize>arg(args, QP_INVFREQ);
  const qNorm = <usize>arg(args, QP_QNORM), kNorm = <usize>arg(args, QP_KNORM);
  const T = arg(args, QP_T), heads = arg(args, QP_HEADS), kvHeads = arg(args, QP_KVHEADS), headDim = arg(args, QP_HEADDIM);
  const half = arg(args, QP_ROT) >> 1, style = arg(args, QP_STYLE);
  const eps = reinterpret<f32>(arg(args, QP_EPS));
  const dt = arg(args, QP_KVDT);
  const qDim = heads * headDim, kvDim = kvHeads * headDim;
  const rowB = kvRowBytes(dt, kvHeads, headDim);
  const rowBytes = <usize>(qDim + 2 * kvDim) << 2;
  const act = activeThreads(T, nth, 4);
  const t1 = shareStart(T, tid + 1, act, 1);
  for (let t = shareStart(T, tid, act, 1); t < t1; t++) {
    const src = qkv + <usize>t * rowBytes;
    const q = qRot + (<usize>(t * qDim) << 2);
    const slot = <usize>load<i32>(slots + (<usize>t << 2));
    // an f32 cache row is worked on in place; a 16-bit or int8 one in scratch, rounded when stored
    const k = dt == DT_F32 ? kc + slot * rowB : scratch + 4096;
    memory.copy(q, src, <usize>qDim << 2);
    memory.copy(k, src + (<usize>qDim << 2), <usize>kvDim << 2);
    storeKv(dt, vc + slot * rowB, src + (<usize>(qDim + kvDim) << 2), kvHeads, headDim);
    if (qNorm) rmsnorm(0, 1, q, q, qNorm, heads, headDim, eps);
    if (kNorm) rmsnorm(0, 1, k, k, kNorm, kvHeads, headDim, eps);
    angles(scratch, load<i32>(positions + (<usize>t << 2)), invFreq, half);
    rotateHeads(q, heads, headDim, half, style, scratch);
    rotateHeads(k, kvHeads, headDim, half, style, scratch);
    if (dt != DT_F32) storeKv(dt, kc + slot * rowB, k, kvHeads, headDim);
  }
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/** Elementwise ops, row copies and the KV write, split over elements or rows. */
import { activeThreads, dtBytes, shareStart, wAt, wHi, wLo } from "./simd";
import { kvRowBytes, storeKv } from "./kv";
import { expv } from "./exp";

/** Elements per thread below which one thread does it all. */
const MIN_ELEMS: i32 = 16384;

/**
 * silu(g) = g / (1 + e^-g) on four lanes, e^-g by exp.ts's vector exp (~1 ulp), which
 * takes x <= 88: past that e^-g is made Infinity, as in f32, so g / Infinity gives -0 (and
 * -Infinity gives NaN, as the reference's formula does); NaN stays NaN.
 */
@inline function siluv(g: v128): v128 {
  const x = f32x4.neg(g);
  const e = v128.bitselect(f32x4.splat(Infinity), expv(f32x4.min(x, f32x4.splat(88))), f32x4.gt(x, f32x4.splat(88)));
  return f32x4.div(g, f32x4.add(f32x4.splat(1), e));
}

/** One value through the vector path (the same rounding as the lanes). */
@inline function siluf(g: f32): f32 {
  return f32x4.extract_lane(siluv(f32x4.splat(g)), 0);
}

/** op 0: out = a + b; 1: out = a * b; 2: out = silu(a). n elements. */
export function elementwise(tid: i32, nth: i32, kind: i32, out: usize, a: usize, b: usize, n: i32): void {
  const act = activeThreads(n, nth, MIN_ELEMS);
  let i = shareStart(n, tid, act, 4);
  const e = shareStart(n, tid + 1, act, 4);
  if (kind == 0) {
    for (; i + 4 <= e; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
    }
    for (; i < e; i++) store<f32>(out + (<usize>i << 2), load<f32>(a + (<usize>i << 2)) + load<f32>(b + (<usize>i << 2)));
  } else if (kind == 1) {
    for (; i + 4 <= e; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    }
    for (; i < e; i++) store<f32>(out + (<usize>i << 2), load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2)));
  } else {
    for (; i + 4 <= e; i += 4) v128.store(out + (<usize>i << 2), siluv(v128.load(a + (<usize>i << 2))));
    for (; i < e; i++) store<f32>(out + (<usize>i << 2), siluf(load<f32>(a + (<usize>i << 2))));
  }
}

/** out [rows, I] = silu(x[:, :I]) * x[:, I:], x [rows, 2I] = gate|up. */
export function siluMul(tid: i32, nth: i32, out: usize, x: usize, rows: i32, I: i32): void {
  const act = activeThreads(rows, nth, max(1, MIN_ELEMS / I));
  const r1 = shareStart(rows, tid + 1, act, 1);
  for (let r = shareStart(rows, tid, act, 1); r < r1; r++) {
    const g = x + (<usize>r * <usize>I << 3);
    const u = g + (<usize>I << 2);
    const o = out + (<usize>r * <usize>I << 2);
    let i = 0;
    for (; i + 4 <= I; i += 4) {
      const k = <usize>i << 2;
      v128.store(o + k, f32x4.mul(siluv(v128.load(g + k)), v128.load(u + k)));
    }
    for (; i < I; i++) {
      const k = <usize>i << 2;
      store<f32>(o + k, siluf(load<f32>(g + k)) * load<f32>(u + k));
    }
  }
}

/** out [rows, n] = x [rows, xCols] columns start .. start+n. */
export function sliceCols(tid: i32, nth: i32, out: usize, x: usize, rows: i32, xCols: i32, start: i32, n: i32): void {
  const act = activeThreads(rows, nth, max(1, MIN_ELEMS / n));
  const r1 = shareStart(rows, tid + 1, act, 1);
  for (let r = shareStart(rows, tid, act, 1); r < r1; r++) {
    memory.copy(out + (<usize>r * <usize>n << 2), x + ((<usize>r * <usize>xCols + <usize>start) << 2), <usize>n << 2);
  }
}

/** out [R, cols] = x rows idx[0..R) (i32 indices). */
export function gatherRows(tid: i32, nth: i32, out: usize, x: usize, idx: usize, R: i32, cols: i32): void {
  if (tid != 0) return;
  const rb = <usize>cols << 2;
  for (let r = 0; r < R; r++) memory.copy(out + <usize>r * rb, x + <usize>load<i32>(idx + (<usize>r << 2)) * rb, rb);
}

/** out [T, H] = table [vocab, H] rows ids[0..T), widened from the table's dtype. */
export function embedding(tid: i32, nth: i32, out: usize, table: usize, dt: i32, ids: usize, T: i32, H: i32): void {
  const act = activeThreads(T, nth, max(1, MIN_ELEMS / H));
  const t1 = shareStart(T, tid + 1, act, 1);
  for (let t = shareStart(T, tid, act, 1); t < t1; t++) {
    const src = table + <usize>load<i32>(ids + (<usize>t << 2)) * <usize>H * dtBytes(dt);
    const dst = out + (<usize>t * <usize>H << 2);
    let i = 0;
    for (; i + 8 <= H; i += 8) {
      const so = src + <usize>i * dtBytes(dt);
      v128.store(dst + (<usize>i << 2), wLo(dt, so));
      v128.store(dst + (<usize>i << 2), wHi(dt, so), 16);
    }
    for (; i < H; i++) store<f32>(dst + (<usize>i << 2), wAt(dt, src + <usize>i * dtBytes(dt)));
  }
}

/** Copies k, v [T, kvDim] to cache rows slots[t] of kc, vc [slots, row] (kv.ts layout of dt). */
export function kvWrite(tid: i32, nth: i32, kc: usize, vc: usize, k: usize, v: usize, slots: usize, T: i32, kvDim: i32, dt: i32, headDim: i32): void {
  const act = activeThreads(T, nth, max(1, MIN_ELEMS / kvDim));
  const t1 = shareStart(T, tid + 1, act, 1);
  const kvHeads = kvDim / headDim;
  const rb = <usize>kvDim << 2;
  const cb = kvRowBytes(dt, kvHeads, headDim);
  for (let t = shareStart(T, tid, act, 1); t < t1; t++) {
    const slot = <usize>load<i32>(slots + (<usize>t << 2));
    storeKv(dt, kc + slot * cb, k + <usize>t * rb, kvHeads, headDim);
    storeKv(dt, vc + slot * cb, v + <usize>t * rb, kvHeads, headDim);
  }
}

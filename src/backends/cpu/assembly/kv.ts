// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * The paged KV cache's row layout per storage type, and the reads and writes attention
 * does on it. A slot's row of one plane is [kvHeads] heads of:
 *   f32 / bf16 / f16: headDim values;
 *   int8: [scale f32][headDim int8], symmetric, scale = max|x| / 127 of that head and
 *         slot (one scale per head and slot; why, and the rounding, in
 *         ../../reference/kv-plane.ts, which this matches byte for byte).
 * So a block is blockSize consecutive rows and a block copy copies its scales too.
 */
import { axpyAs, dotAs, dtBytes, fma, hsum, storeAs, wAt, wHi, wLo, DT_BF16, DT_F16, DT_F32, DT_I8 } from "./simd";

/** Bytes of one head of one slot. */
@inline export function kvHeadBytes(dt: i32, headDim: i32): usize {
  return dt == DT_I8 ? 4 + <usize>headDim : <usize>headDim * dtBytes(dt);
}

/** Bytes of one slot's row (all KV heads). */
@inline export function kvRowBytes(dt: i32, kvHeads: i32, headDim: i32): usize {
  return <usize>kvHeads * kvHeadBytes(dt, headDim);
}

/** Quantizes `heads` heads of headDim f32 at src into int8 rows with their scales at dst. */
export function quantizeHeadsI8(dst: usize, src: usize, heads: i32, headDim: i32): void {
  for (let h = 0; h < heads; h++) {
    const s = src + (<usize>(h * headDim) << 2);
    const d = dst + <usize>h * kvHeadBytes(DT_I8, headDim);
    let m: f32 = 0;
    for (let i = 0; i < headDim; i++) m = max(m, abs(load<f32>(s + (<usize>i << 2))));
    const inv: f32 = m > 0 ? <f32>127 / m : 0;
    store<f32>(d, m / <f32>127);
    for (let i = 0; i < headDim; i++) {
      let v = nearest<f32>(load<f32>(s + (<usize>i << 2)) * inv);
      v = v != v ? <f32>0 : min(max(v, <f32>-127), <f32>127); // NaN would trap the conversion
      store<i8>(d + 4 + <usize>i, <i8><i32>v);
    }
  }
}

/** Stores one slot's row: f32 src [kvHeads * headDim] -> the cache row at dst in dt. */
export function storeKv(dt: i32, dst: usize, src: usize, kvHeads: i32, headDim: i32): void {
  if (dt == DT_I8) quantizeHeadsI8(dst, src, kvHeads, headDim);
  else storeAs(dt, dst, src, kvHeads * headDim);
}

/** scale * sum_i a[i] * q[i] for one int8 head at w ([scale][n int8]). */
@inline function dotI8(a: usize, w: usize, n: i32): f32 {
  const q = w + 4;
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const x = v128.load8x8_s(q + <usize>i); // 8 int8 -> i16x8
    acc0 = fma(v128.load(a + (<usize>i << 2)), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x)), acc0);
    acc1 = fma(v128.load(a + (<usize>i << 2), 16), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x)), acc1);
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * <f32>load<i8>(q + <usize>i);
  return s * load<f32>(w);
}

/** y[i] += a * scale * q[i] for one int8 head at w. */
@inline function axpyI8(y: usize, a: f32, w: usize, n: i32): void {
  const as = a * load<f32>(w);
  const q = w + 4;
  const av = f32x4.splat(as);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    const x = v128.load8x8_s(q + <usize>i);
    v128.store(y + o, fma(av, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x)), v128.load(y + o)));
    v128.store(y + o, fma(av, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x)), v128.load(y + o, 16)), 16);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + as * <f32>load<i8>(q + <usize>i));
  }
}

/** q . k for one cached head at w (f32 a). */
@inline export function kvDot(dt: i32, a: usize, w: usize, n: i32): f32 {
  return dt == DT_I8 ? dotI8(a, w, n) : dotAs(dt, a, w, n);
}

/** y += a * v for one cached head at w. */
@inline export function kvAxpy(dt: i32, y: usize, a: f32, w: usize, n: i32): void {
  if (dt == DT_I8) axpyI8(y, a, w, n);
  else axpyAs(dt, y, a, w, n);
}

/**
 * One cached head at w as n f32 values at dst (int8: q * scale, the value the reference
 * reads). Attention widens a block of keys once and reuses it for every query row of a tile.
 */
export function kvWidenHead(dt: i32, dst: usize, w: usize, n: i32): void {
  if (dt == DT_I8) widenI8(dst, w, n);
  else if (dt == DT_F32) memory.copy(dst, w, <usize>n << 2);
  else if (dt == DT_BF16) widen16(DT_BF16, dst, w, n);
  else widen16(DT_F16, dst, w, n);
}

@inline function widen16(dt: i32, dst: usize, w: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = w + (<usize>i << 1);
    v128.store(dst + (<usize>i << 2), wLo(dt, p));
    v128.store(dst + (<usize>i << 2), wHi(dt, p), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), wAt(dt, w + (<usize>i << 1)));
}

@inline function widenI8(dst: usize, w: usize, n: i32): void {
  const s = load<f32>(w);
  const sv = f32x4.splat(s);
  const q = w + 4;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const x = v128.load8x8_s(q + <usize>i);
    v128.store(dst + (<usize>i << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(x)), sv));
    v128.store(dst + (<usize>i << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(x)), sv), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), <f32>load<i8>(q + <usize>i) * s);
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc): v128 builtins map 1:1 to WASM SIMD.
/**
 * SIMD helpers shared by the kernels: fused multiply-add (relaxed SIMD where the
 * build has it), horizontal sums, and widening of bf16 / fp16 weights to f32 lanes.
 */

/** Weight storage codes (mirror of ../layout.ts WeightDType). */
export const DT_F32: i32 = 0;
export const DT_BF16: i32 = 1;
export const DT_F16: i32 = 2;
/** int8 KV cache rows with per-head scales (kv.ts); never a weight code. */
export const DT_I8: i32 = 3;
/**
 * fp16 weights decoded as value * 2^-112 (no multiply), read against activations scaled
 * by 2^64 whose 8-column blocks are stored as [even columns, odd columns] (matmul.ts's
 * one-token path); a kernel-internal code, never stored.
 */
export const DT_F16S: i32 = 4;

/** Sign at bit 31, fp16 exponent and mantissa at bits 27..13: as f32, the fp16 value times 2^-112. */
const F16S_MASK: i32 = <i32>0x8fffe000;

/** a * b + c, per lane. The relaxed build fuses (one rounding); the plain one rounds twice. */
@inline export function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

@inline export function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/** Bytes per stored weight element. */
@inline export function dtBytes(dt: i32): usize {
  return dt == DT_F32 ? 4 : 2;
}

/**
 * Sign-extended fp16 bits (one per i32 lane) -> f32. Shifted left 13 and masked, the sign
 * lands on bit 31 and exponent + mantissa on bits 27..13: as f32 that is exactly the fp16
 * value times 2^-112 (subnormal halves included), so one multiply rebiases it.
 * Inf/NaN are not preserved (they decode as finite values; stored weights have none).
 */
@inline function f16LanesToF32(s: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(s, 13), i32x4.splat(F16S_MASK)), f32x4.splat(5.192296858534828e33)); // 2^112
}

/**
 * fp16 halves in the top 16 bits of each i32 lane -> f32 bits of value * 2^-112 (see
 * f16LanesToF32): an arithmetic shift by 3 moves exponent and mantissa into place, the
 * mask drops the copies of the sign and the low half. Two integer ops, no multiply.
 */
@inline function f16HighLanesScaled(u: v128): v128 {
  return v128.and(i32x4.shr_s(u, 3), i32x4.splat(F16S_MASK));
}

/** Elements 0..3 of the 8 weights at `p` (element index already applied), as f32. */
@inline export function wLo(dt: i32, p: usize): v128 {
  if (dt == DT_F32) return v128.load(p);
  if (dt == DT_F16) return f16LanesToF32(v128.load16x4_s(p));
  // DT_F16S, even halves 0, 2, 4, 6: a load 2 bytes early puts each in the top of an i32
  // lane (the low half, the previous weight or whatever precedes the matrix, is masked off)
  if (dt == DT_F16S) return f16HighLanesScaled(v128.load(p - 2));
  return v128.shuffle<i16>(i16x8.splat(0), v128.load(p), 0, 8, 1, 9, 2, 10, 3, 11);
}

/** Elements 4..7 of the 8 weights at `p`, as f32 (DT_F16S: the odd halves 1, 3, 5, 7). */
@inline export function wHi(dt: i32, p: usize): v128 {
  if (dt == DT_F32) return v128.load(p, 16);
  if (dt == DT_F16) return f16LanesToF32(v128.load16x4_s(p, 8));
  if (dt == DT_F16S) return f16HighLanesScaled(v128.load(p));
  return v128.shuffle<i16>(i16x8.splat(0), v128.load(p), 4, 12, 5, 13, 6, 14, 7, 15);
}

/** Lanes 0..3 of 8 16-bit weights already loaded (one load serves both halves). */
@inline export function rawLo(dt: i32, raw: v128): v128 {
  if (dt == DT_BF16) return v128.shuffle<i16>(i16x8.splat(0), raw, 0, 8, 1, 9, 2, 10, 3, 11);
  return f16LanesToF32(i32x4.extend_low_i16x8_s(raw));
}

/** Lanes 4..7 of 8 16-bit weights already loaded. */
@inline export function rawHi(dt: i32, raw: v128): v128 {
  if (dt == DT_BF16) return v128.shuffle<i16>(i16x8.splat(0), raw, 4, 12, 5, 13, 6, 14, 7, 15);
  return f16LanesToF32(i32x4.extend_high_i16x8_s(raw));
}

/** One stored weight at `p` as f32 (scalar tails). */
@inline export function wAt(dt: i32, p: usize): f32 {
  if (dt == DT_F32) return load<f32>(p);
  if (dt == DT_BF16) return reinterpret<f32>(<u32>load<u16>(p) << 16);
  const scaled = reinterpret<f32>((<i32>load<i16>(p) << 13) & F16S_MASK);
  return dt == DT_F16S ? scaled : scaled * 5.192296858534828e33;
}

/** f32 -> the bits of `dt` (bf16 or fp16), rounding to nearest even, as checkpoint/fp16.ts does. */
export function halfBits(dt: i32, x: f32): u32 {
  const bits = reinterpret<u32>(x);
  if (dt == DT_BF16) {
    if ((bits & 0x7f800000) == 0x7f800000 && (bits & 0x7fffff) != 0) return ((bits >> 16) | 0x40) & 0xffff;
    return ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) & 0xffff;
  }
  const sign = (bits >> 16) & 0x8000;
  const exp = <i32>((bits >> 23) & 0xff);
  const mant = bits & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant != 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = <u32>(14 - e);
    const rem = m & ((<u32>1 << shift) - 1);
    const half = <u32>1 << (shift - 1);
    let h = m >> shift;
    if (rem > half || (rem == half && (h & 1) != 0)) h++;
    return sign | h;
  }
  let h = sign | (<u32>e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) h++;
  return h;
}

/** halfBits on four lanes (bits of f32 in, bits of bf16 / fp16 in the low half of each i32 lane out): the same rounding, NaN and overflow results. */
@inline function halfBits4(dt: i32, x: v128): v128 {
  if (dt == DT_BF16) {
    const rounded = i32x4.shr_u(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), v128.and(i32x4.shr_u(x, 16), i32x4.splat(1))), 16);
    const nan = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
    return v128.bitselect(v128.or(i32x4.shr_u(x, 16), i32x4.splat(0x40)), rounded, nan);
  }
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  // normal halves: rebias the exponent, round the 13 dropped bits to nearest even (a carry may reach the exponent, up to Inf)
  const odd = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  const normal = i32x4.shr_u(i32x4.sub(i32x4.add(a, i32x4.add(i32x4.splat(0x0fff), odd)), i32x4.splat(0x38000000)), 13);
  // subnormal halves (|x| < 2^-14): adding 0.5 leaves the half's bits at the bottom of the mantissa, rounded to nearest even by the FPU
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  let h = v128.bitselect(sub, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  h = v128.bitselect(i32x4.splat(0x7c00), h, i32x4.ge_s(a, i32x4.splat(0x47800000)));
  h = v128.bitselect(i32x4.splat(0x7e00), h, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(h, sign);
}

/** Stores n f32 values from src at dst in dtype dt (f32: a copy), eight lanes at a time. */
export function storeAs(dt: i32, dst: usize, src: usize, n: i32): void {
  if (dt == DT_F32) {
    memory.copy(dst, src, <usize>n << 2);
    return;
  }
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const s = src + (<usize>i << 2);
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(halfBits4(dt, v128.load(s)), halfBits4(dt, v128.load(s, 16))));
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>halfBits(dt, load<f32>(src + (<usize>i << 2))));
}

/** sum_i a[i] * w[i]: a f32, w stored in dt (attention over a 16-bit cache). */
@inline export function dotAs(dt: i32, a: usize, w: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const wo = w + <usize>i * dtBytes(dt);
    acc0 = fma(v128.load(a + (<usize>i << 2)), wLo(dt, wo), acc0);
    acc1 = fma(v128.load(a + (<usize>i << 2), 16), wHi(dt, wo), acc1);
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * wAt(dt, w + <usize>i * dtBytes(dt));
  return s;
}

/** y[i] += a * w[i]: y f32, w stored in dt. */
@inline export function axpyAs(dt: i32, y: usize, a: f32, w: usize, n: i32): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    const wo = w + <usize>i * dtBytes(dt);
    v128.store(y + o, fma(av, wLo(dt, wo), v128.load(y + o)));
    v128.store(y + o, fma(av, wHi(dt, wo), v128.load(y + o, 16)), 16);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + a * wAt(dt, w + <usize>i * dtBytes(dt)));
  }
}

/** sum_i a[i] * b[i] over n f32 values. */
@inline export function dot(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    acc0 = fma(v128.load(a + o), v128.load(b + o), acc0);
    acc1 = fma(v128.load(a + o, 16), v128.load(b + o, 16), acc1);
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** y[i] += a * x[i] over n f32 values. */
@inline export function axpy(y: usize, a: f32, x: usize, n: i32): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, fma(av, v128.load(x + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + a * load<f32>(x + o));
  }
}

/** Word i of an argument block. */
@inline export function arg(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}

/** First thread index past the active ones: at most nth, enough for `minPer` items each. */
export function activeThreads(n: i32, nth: i32, minPer: i32): i32 {
  const a = (n + minPer - 1) / minPer;
  return a < 1 ? 1 : a < nth ? a : nth;
}

/** Start of thread tid's contiguous share of n items (shares aligned to `align`); n when idle. */
export function shareStart(n: i32, tid: i32, act: i32, align: i32): i32 {
  if (tid >= act) return n;
  let per = (n + act - 1) / act;
  per = ((per + align - 1) / align) * align;
  const s = tid * per;
  return s < n ? s : n;
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * exp on four f32 lanes, for softmax (inputs <= 0 after the max is subtracted).
 * Range reduction x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two so n ln2 is
 * exact enough; a degree-7 polynomial for e^r (1 + r + r^2 p(r), Cephes expf's
 * minimax coefficients, ~1 ulp), then the exponent n added to the float's bits.
 * Below -87 (where e^x would be subnormal) the result is 0, -Infinity included.
 */
import { fma } from "./simd";

const LOG2E: f32 = 1.44269504088896341;
const LN2_HI: f32 = 0.693359375; // few mantissa bits: n * LN2_HI is exact for |n| < 2^10
const LN2_LO: f32 = -2.12194440e-4;
const X_MIN: f32 = -87.0;

/** e^x per lane, for x <= 88 (softmax feeds x <= 0; silu clamps to 88). */
@inline export function expv(x: v128): v128 {
  const under = f32x4.lt(x, f32x4.splat(X_MIN));
  const xc = f32x4.max(x, f32x4.splat(X_MIN));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(LOG2E)));
  let r = fma(n, f32x4.splat(-LN2_HI), xc);
  r = fma(n, f32x4.splat(-LN2_LO), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = fma(p, r, f32x4.splat(1.3981999507e-3));
  p = fma(p, r, f32x4.splat(8.3334519073e-3));
  p = fma(p, r, f32x4.splat(4.1665795894e-2));
  p = fma(p, r, f32x4.splat(1.6666665459e-1));
  p = fma(p, r, f32x4.splat(5.0000001201e-1));
  const y = f32x4.add(fma(f32x4.mul(p, r), r, r), f32x4.splat(1));
  const pow2n = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(y, pow2n), under);
}

/** e^x of one value through the vector path (the same rounding as the lanes). */
@inline export function exps(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

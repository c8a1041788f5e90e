// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/** RMSNorm and the fused residual add + RMSNorm, split over rows. */
import { activeThreads, fma, hsum, shareStart } from "./simd";

/** out[g] = weight * x[g] / sqrt(mean(x[g]^2) + eps) for one group of n values at x. */
@inline function normGroup(out: usize, x: usize, weight: usize, n: i32, eps: f32): void {
  let ss = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    ss = fma(v, v, ss);
  }
  let s = hsum(ss);
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    s += v * v;
  }
  const inv: f32 = <f32>(1.0 / Math.sqrt(<f64>s / <f64>n + <f64>eps));
  const iv = f32x4.splat(inv);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(v128.load(weight + o), f32x4.mul(iv, v128.load(x + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(weight + o) * (inv * load<f32>(x + o)));
  }
}

/** RMSNorm of each `group`-sized slice of x [rows, cols]; `groups` = rows * cols / group. Safe in place. */
export function rmsnorm(tid: i32, nth: i32, out: usize, x: usize, weight: usize, groups: i32, group: i32, eps: f32): void {
  const act = activeThreads(groups, nth, max(1, 8192 / group));
  const g1 = shareStart(groups, tid + 1, act, 1);
  for (let g = shareStart(groups, tid, act, 1); g < g1; g++) {
    const o = <usize>g * <usize>group << 2;
    normGroup(out + o, x + o, weight, group, eps);
  }
}

/** sum = a + b; out = rmsnorm(sum) per row of `cols`. */
export function addRmsnorm(tid: i32, nth: i32, out: usize, sum: usize, a: usize, b: usize, weight: usize, rows: i32, cols: i32, eps: f32): void {
  const act = activeThreads(rows, nth, max(1, 8192 / cols));
  const r1 = shareStart(rows, tid + 1, act, 1);
  for (let r = shareStart(rows, tid, act, 1); r < r1; r++) {
    const o = <usize>r * <usize>cols << 2;
    let i = 0;
    for (; i + 4 <= cols; i += 4) {
      const p = o + (<usize>i << 2);
      v128.store(sum + p, f32x4.add(v128.load(a + p), v128.load(b + p)));
    }
    for (; i < cols; i++) {
      const p = o + (<usize>i << 2);
      store<f32>(sum + p, load<f32>(a + p) + load<f32>(b + p));
    }
    normGroup(out + o, sum + o, weight, cols, eps);
  }
}

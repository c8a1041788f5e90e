// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/** Sampling helpers over logits: argmax per row, and the top k of one row. */
import { activeThreads, shareStart } from "./simd";

/** out[r] (i32) = index of the largest value of row r of x [rows, cols]; the first on ties. */
export function argmax(tid: i32, nth: i32, out: usize, x: usize, rows: i32, cols: i32): void {
  const act = activeThreads(rows, nth, 1);
  const r1 = shareStart(rows, tid + 1, act, 1);
  for (let r = shareStart(rows, tid, act, 1); r < r1; r++) {
    const row = x + (<usize>r * <usize>cols << 2);
    let best: f32 = load<f32>(row);
    let at = 0;
    for (let i = 1; i < cols; i++) {
      const v = load<f32>(row + (<usize>i << 2));
      if (v > best) {
        best = v;
        at = i;
      }
    }
    store<i32>(out + (<usize>r << 2), at);
  }
}

/**
 * The k largest values of x [cols], descending (ties: lower index first):
 * ids (i32) and vals (f32), k entries each. A sorted insertion buffer: cols * log-ish for small k.
 */
export function topk(tid: i32, nth: i32, ids: usize, vals: usize, x: usize, cols: i32, k: i32): void {
  if (tid != 0) return;
  let n = 0; // entries filled
  for (let i = 0; i < cols; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (n == k && !(v > load<f32>(vals + (<usize>(k - 1) << 2)))) continue;
    // shift smaller entries down, insert after equal ones (stable)
    let j = n < k ? n : k - 1;
    while (j > 0 && load<f32>(vals + (<usize>(j - 1) << 2)) < v) {
      store<f32>(vals + (<usize>j << 2), load<f32>(vals + (<usize>(j - 1) << 2)));
      store<i32>(ids + (<usize>j << 2), load<i32>(ids + (<usize>(j - 1) << 2)));
      j--;
    }
    store<f32>(vals + (<usize>j << 2), v);
    store<i32>(ids + (<usize>j << 2), i);
    if (n < k) n++;
  }
}

/** out[tid] = sum of this thread's share of x [n] (f32): a pure streaming read, to measure memory bandwidth. */
export function readSum(tid: i32, nth: i32, out: usize, x: usize, n: i32): void {
  const i0 = shareStart(n, tid, nth, 64);
  const i1 = shareStart(n, tid + 1, nth, 64);
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  let i = i0;
  for (; i + 16 <= i1; i += 16) {
    const p = x + (<usize>i << 2);
    a = f32x4.add(a, v128.load(p));
    b = f32x4.add(b, v128.load(p, 16));
    c = f32x4.add(c, v128.load(p, 32));
    d = f32x4.add(d, v128.load(p, 48));
  }
  let s = f32x4.extract_lane(f32x4.add(f32x4.add(a, b), f32x4.add(c, d)), 0);
  for (; i < i1; i++) s += load<f32>(x + (<usize>i << 2));
  store<f32>(out + (<usize>tid << 2), s);
}

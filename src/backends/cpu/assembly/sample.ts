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

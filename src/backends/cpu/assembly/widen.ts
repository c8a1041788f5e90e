// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Widening of stored weight rows to f32, for a system BLAS that multiplies f32 only
 * (blas-matmul.ts): each thread widens a contiguous share of the rows, one stream each.
 */
import { activeThreads, dtBytes, shareStart, wAt, wHi, wLo, DT_BF16, DT_F16, DT_F32 } from "./simd";

/** Rows [n0, n1) of w [N, K] (stored in dt) as f32 into dst [n1 - n0, K]. */
export function widenRows(tid: i32, nth: i32, dst: usize, w: usize, dt: i32, K: i32, n0: i32, n1: i32): void {
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K))); // ~32K values a thread at least
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  const out = dst + ((<usize>(r0 - n0) * <usize>K) << 2);
  const src = w + <usize>r0 * <usize>K * dtBytes(dt);
  const n = (r1 - r0) * K;
  if (dt == DT_F32) memory.copy(out, src, <usize>n << 2);
  else if (dt == DT_BF16) widen(DT_BF16, out, src, n);
  else widen(DT_F16, out, src, n);
}

@inline function widen(dt: i32, out: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const p = src + (<usize>i << 1);
    v128.store(out + (<usize>i << 2), wLo(dt, p));
    v128.store(out + (<usize>i << 2), wHi(dt, p), 16);
  }
  for (; i < n; i++) store<f32>(out + (<usize>i << 2), wAt(dt, src + (<usize>i << 1)));
}

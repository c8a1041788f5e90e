// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Widening of stored weight rows to f32, for a system BLAS that multiplies f32 only
 * (blas-matmul.ts): each thread widens a contiguous share of the rows (matmul.ts's
 * widenRows, one stream each).
 */
import { widenRows } from "./matmul";
import { activeThreads, shareStart, DT_BF16, DT_F16, DT_F32 } from "./simd";

/** This thread's share of rows [n0, n1) of w [N, K] (stored in dt; column blocks of kc when kc > 0) as f32 into dst [n1 - n0, K]. */
export function widenRowsShare(tid: i32, nth: i32, dst: usize, w: usize, dt: i32, K: i32, n0: i32, n1: i32, N: i32, kc: i32): void {
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K))); // ~32K values a thread at least
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  const out = dst + ((<usize>(r0 - n0) * <usize>K) << 2);
  if (dt == DT_F32) widenRows(DT_F32, out, w, K, N, kc, r0, r1);
  else if (dt == DT_BF16) widenRows(DT_BF16, out, w, K, N, kc, r0, r1);
  else widenRows(DT_F16, out, w, K, N, kc, r0, r1);
}

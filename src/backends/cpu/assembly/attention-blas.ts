// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * The two pool kernels of prefill attention through a system BLAS (../blas-attention.ts),
 * which computes the q.k and p.v products with sgemm between them:
 *   gatherKv: one sequence's keys and values for a run of KV heads, out of the paged cache
 *     (any KV dtype) into f32 [heads, keys, headDim], sgemm's operands;
 *   softmaxCausal: rows of scores [rows, keys] (one query token each, heads stacked) into
 *     probabilities, each row over its causal / window range only, zeros elsewhere, so the
 *     p.v sgemm may run over the block's whole key span.
 */
import { arg, activeThreads, hmax, hsum, shareStart } from "./simd";
import { kvHeadBytes, kvRowBytes, kvWidenHead } from "./kv";
import { expv, exps } from "./exp";

/** Argument words of gatherKv. */
const G_K = 0, G_V = 1, G_KC = 2, G_VC = 3, G_TABLE = 4, G_K0 = 5, G_N = 6, G_KVH0 = 7, G_NKVH = 8, G_HD = 9, G_KVHEADS = 10, G_BS = 11, G_DT = 12;

/** This thread's share of rows (head, key) of k / v [nKvh, n, headDim] f32 = keys [k0, k0 + n) of heads [kvh0, kvh0 + nKvh) from the cache. */
export function gatherKv(tid: i32, nth: i32, a: usize): void {
  const hd = arg(a, G_HD), n = arg(a, G_N), nKvh = arg(a, G_NKVH), k0 = arg(a, G_K0), bs = arg(a, G_BS), dt = arg(a, G_DT);
  const table = <usize>arg(a, G_TABLE);
  const rowB = kvRowBytes(dt, arg(a, G_KVHEADS), hd), headB = kvHeadBytes(dt, hd);
  const rows = n * nKvh;
  const act = activeThreads(rows, nth, 64);
  const r0 = shareStart(rows, tid, act, 1), r1 = shareStart(rows, tid + 1, act, 1);
  const rowF = <usize>hd << 2;
  for (let r = r0; r < r1; r++) {
    const h = r / n, j = k0 + r % n;
    const slot = <usize>load<i32>(table + (<usize>(j / bs) << 2)) * <usize>bs + <usize>(j % bs);
    const off = slot * rowB + <usize>(arg(a, G_KVH0) + h) * headB;
    kvWidenHead(dt, <usize>arg(a, G_K) + <usize>r * rowF, <usize>arg(a, G_KC) + off, hd);
    kvWidenHead(dt, <usize>arg(a, G_V) + <usize>r * rowF, <usize>arg(a, G_VC) + off, hd);
  }
}

/** Argument words of softmaxCausal. */
const S_S = 0, S_ROWS = 1, S_M = 2, S_N = 3, S_POS = 4, S_K0 = 5, S_WINDOW = 6, S_INV = 7;

/**
 * This thread's share of rows of s [rows, n] (scores, already scaled): row i is query token
 * i % m of the block (its position at pos[i % m]) against keys k0 .. k0 + n - 1. Each row
 * becomes exp(s - max) over its visible keys [max(k0, pos - window + 1), pos], 0 elsewhere,
 * and inv[i] = 1 / its sum: the p.v product is normalised afterwards, a headDim-long row
 * instead of a keys-long one.
 */
export function softmaxCausal(tid: i32, nth: i32, a: usize): void {
  const s = <usize>arg(a, S_S), rows = arg(a, S_ROWS), m = arg(a, S_M), n = arg(a, S_N), k0 = arg(a, S_K0), window = arg(a, S_WINDOW);
  const pos = <usize>arg(a, S_POS), inv = <usize>arg(a, S_INV);
  const act = activeThreads(rows, nth, 4);
  const i0 = shareStart(rows, tid, act, 1), i1 = shareStart(rows, tid + 1, act, 1);
  for (let i = i0; i < i1; i++) {
    const p = load<i32>(pos + (<usize>(i % m) << 2));
    const lo = max(0, window > 0 ? p - window + 1 - k0 : 0);
    const hi = max(lo, min(n, p - k0 + 1));
    store<f32>(inv + (<usize>i << 2), expRow(s + (<usize>i * <usize>n << 2), n, lo, hi));
  }
}

/** row [n]: exp(row - max) over [lo, hi), zeros outside; returns 1 / the sum (0 for an empty range). */
function expRow(row: usize, n: i32, lo: i32, hi: i32): f32 {
  memory.fill(row, 0, <usize>lo << 2);
  memory.fill(row + (<usize>hi << 2), 0, <usize>(n - hi) << 2);
  if (lo >= hi) return 0;
  let mx: f32 = -Infinity;
  let j = lo;
  if (hi - lo >= 4) {
    let mv = v128.load(row + (<usize>j << 2));
    for (j += 4; j + 4 <= hi; j += 4) mv = f32x4.max(mv, v128.load(row + (<usize>j << 2)));
    mx = hmax(mv);
  }
  for (; j < hi; j++) mx = max(mx, load<f32>(row + (<usize>j << 2)));
  const mv = f32x4.splat(mx);
  let sum = f32x4.splat(0);
  j = lo;
  for (; j + 4 <= hi; j += 4) {
    const p = row + (<usize>j << 2);
    const e = expv(f32x4.sub(v128.load(p), mv));
    v128.store(p, e);
    sum = f32x4.add(sum, e);
  }
  let l = hsum(sum);
  for (; j < hi; j++) {
    const p = row + (<usize>j << 2);
    const e = exps(load<f32>(p) - mx);
    store<f32>(p, e);
    l += e;
  }
  return <f32>1 / l;
}

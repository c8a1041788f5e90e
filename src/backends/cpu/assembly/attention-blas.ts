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

/**
 * This thread's share of keys [k0, k0 + n) of heads [kvh0, kvh0 + nKvh) from the cache into
 * k / v [nKvh, n, headDim] f32. Key by key, its heads in turn: one slot's row is contiguous
 * in the cache, so each is read once, in address order (head by head, a head's keys are
 * reads at the row stride, and the rows of a long context fall out of L2 between heads).
 */
export function gatherKv(tid: i32, nth: i32, a: usize): void {
  const hd = arg(a, G_HD), n = arg(a, G_N), nKvh = arg(a, G_NKVH), k0 = arg(a, G_K0), bs = arg(a, G_BS), dt = arg(a, G_DT);
  const table = <usize>arg(a, G_TABLE);
  const kOut = <usize>arg(a, G_K), vOut = <usize>arg(a, G_V), kc = <usize>arg(a, G_KC), vc = <usize>arg(a, G_VC);
  const rowB = kvRowBytes(dt, arg(a, G_KVHEADS), hd), headB = kvHeadBytes(dt, hd);
  const first = <usize>arg(a, G_KVH0) * headB;
  const act = activeThreads(n, nth, max(1, 64 / nKvh));
  const j0 = shareStart(n, tid, act, 1), j1 = shareStart(n, tid + 1, act, 1);
  const rowF = <usize>hd << 2, planeF = <usize>n * rowF;
  for (let j = j0; j < j1; j++) {
    const key = k0 + j;
    const slot = <usize>load<i32>(table + (<usize>(key / bs) << 2)) * <usize>bs + <usize>(key % bs);
    const src = slot * rowB + first;
    const dst = <usize>j * rowF;
    for (let h = 0; h < nKvh; h++) {
      kvWidenHead(dt, kOut + <usize>h * planeF + dst, kc + src + <usize>h * headB, hd);
      kvWidenHead(dt, vOut + <usize>h * planeF + dst, vc + src + <usize>h * headB, hd);
    }
  }
}

/** Argument words of softmaxCausal. */
const S_S = 0, S_ROWS = 1, S_M = 2, S_N = 3, S_POS = 4, S_K0 = 5, S_WINDOW = 6, S_TID0 = 7;

/**
 * This thread's share of rows of s [rows, n] (scores, already scaled): row i is query token
 * i % m of the block (its position at pos[i % m]) against keys k0 .. k0 + n - 1. Each row
 * becomes softmax(s) over its visible keys [max(k0, pos - window + 1), pos], 0 elsewhere.
 * Threads from tid0 on share the rows (1: thread 0 is busy with a BLAS call meanwhile).
 */
export function softmaxCausal(tid: i32, nth: i32, a: usize): void {
  const s = <usize>arg(a, S_S), rows = arg(a, S_ROWS), m = arg(a, S_M), n = arg(a, S_N), k0 = arg(a, S_K0), window = arg(a, S_WINDOW);
  const pos = <usize>arg(a, S_POS);
  const tid0 = arg(a, S_TID0);
  if (tid < tid0) return;
  const act = activeThreads(rows, nth - tid0, 4);
  const i0 = shareStart(rows, tid - tid0, act, 1), i1 = shareStart(rows, tid - tid0 + 1, act, 1);
  for (let i = i0; i < i1; i++) {
    const p = load<i32>(pos + (<usize>(i % m) << 2));
    const lo = max(0, window > 0 ? p - window + 1 - k0 : 0);
    const hi = max(lo, min(n, p - k0 + 1));
    softmaxRow(s + (<usize>i * <usize>n << 2), n, lo, hi);
  }
}

/** row [n]: softmax over [lo, hi) in place, zeros outside. */
function softmaxRow(row: usize, n: i32, lo: i32, hi: i32): void {
  memory.fill(row, 0, <usize>lo << 2);
  memory.fill(row + (<usize>hi << 2), 0, <usize>(n - hi) << 2);
  if (lo >= hi) return;
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
  const inv: f32 = <f32>1 / l;
  const iv = f32x4.splat(inv);
  for (j = lo; j + 4 <= hi; j += 4) v128.store(row + (<usize>j << 2), f32x4.mul(v128.load(row + (<usize>j << 2)), iv));
  for (; j < hi; j++) store<f32>(row + (<usize>j << 2), load<f32>(row + (<usize>j << 2)) * inv);
}

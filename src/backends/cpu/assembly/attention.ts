// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Causal paged attention over a ragged step. Work items are (token, KV head) pairs,
 * dealt round-robin to threads so long (late) and short (early) prefill rows mix; each
 * item serves the KV head's whole query group, so every cached K/V row is read once
 * per group (GQA). Scores live in the thread's scratch: [group, visible keys].
 */
import { activeThreads, arg, DT_BF16, DT_F16, DT_F32, DT_I8 } from "./simd";
import { kvAxpy, kvDot, kvHeadBytes, kvRowBytes } from "./kv";

/** Step header words (written by ../step-data.ts). */
export const ST_T = 0, ST_S = 1, ST_IDS = 2, ST_POS = 3, ST_SEQSTARTS = 4, ST_CTX = 5, ST_TABLES = 6, ST_MAXBLOCKS = 7, ST_SLOTS = 8, ST_LOGITROWS = 9, ST_R = 10, ST_TOKSEQ = 11;

/** Argument block of attention (i32 words). */
export const AT_OUT = 0, AT_Q = 1, AT_KC = 2, AT_VC = 3, AT_STEP = 4, AT_HEADS = 5, AT_KVHEADS = 6, AT_HEADDIM = 7, AT_SCALE = 8, AT_WINDOW = 9, AT_BLOCK = 10, AT_KVDT = 11;

export function attention(tid: i32, nth: i32, scratch: usize, args: usize): void {
  const dt = arg(args, AT_KVDT);
  if (dt == DT_F32) attentionAs(DT_F32, tid, nth, scratch, args);
  else if (dt == DT_BF16) attentionAs(DT_BF16, tid, nth, scratch, args);
  else if (dt == DT_I8) attentionAs(DT_I8, tid, nth, scratch, args);
  else attentionAs(DT_F16, tid, nth, scratch, args);
}

/** The kernel for a cache stored in dt (inlined once per dtype). */
@inline function attentionAs(dt: i32, tid: i32, nth: i32, scratch: usize, args: usize): void {
  const out = <usize>arg(args, AT_OUT), q = <usize>arg(args, AT_Q), kc = <usize>arg(args, AT_KC), vc = <usize>arg(args, AT_VC);
  const step = <usize>arg(args, AT_STEP);
  const heads = arg(args, AT_HEADS), kvHeads = arg(args, AT_KVHEADS), headDim = arg(args, AT_HEADDIM);
  const scale = reinterpret<f32>(arg(args, AT_SCALE));
  const window = arg(args, AT_WINDOW), bs = arg(args, AT_BLOCK);
  const T = arg(step, ST_T);
  const positions = <usize>arg(step, ST_POS), tables = <usize>arg(step, ST_TABLES), tokSeq = <usize>arg(step, ST_TOKSEQ);
  const maxBlocks = arg(step, ST_MAXBLOCKS);
  const group = heads / kvHeads;
  const qDim = heads * headDim;
  const items = T * kvHeads;
  const act = activeThreads(items, nth, 1);
  for (let it = tid; it < items; it += act) {
    const t = it / kvHeads, kvh = it % kvHeads;
    const pos = load<i32>(positions + (<usize>t << 2));
    const first = window > 0 ? max(0, pos - window + 1) : 0;
    const n = pos - first + 1;
    const table = tables + (<usize>(load<i32>(tokSeq + (<usize>t << 2)) * maxBlocks) << 2);
    const q0 = q + (<usize>(t * qDim + kvh * group * headDim) << 2);
    const o0 = out + (<usize>(t * qDim + kvh * group * headDim) << 2);
    const rowB = kvRowBytes(dt, kvHeads, headDim);
    const kvOff = <usize>kvh * kvHeadBytes(dt, headDim);
    // scores[g, j] = q_g . k_j * scale
    for (let j = first; j <= pos; j++) {
      const slot = load<i32>(table + (<usize>(j / bs) << 2)) * bs + j % bs;
      const kp = kc + <usize>slot * rowB + kvOff;
      for (let g = 0; g < group; g++) {
        store<f32>(scratch + (<usize>(g * n + j - first) << 2), kvDot(dt, q0 + (<usize>(g * headDim) << 2), kp, headDim) * scale);
      }
    }
    // softmax per query head; the sum divides at the end
    for (let g = 0; g < group; g++) {
      const sc = scratch + (<usize>(g * n) << 2);
      let m: f32 = -Infinity;
      for (let j = 0; j < n; j++) m = max(m, load<f32>(sc + (<usize>j << 2)));
      let sum: f32 = 0;
      for (let j = 0; j < n; j++) {
        const e = Mathf.exp(load<f32>(sc + (<usize>j << 2)) - m);
        store<f32>(sc + (<usize>j << 2), e);
        sum += e;
      }
      store<f32>(scratch + (<usize>(group * n + g) << 2), <f32>1 / sum);
      memory.fill(o0 + (<usize>(g * headDim) << 2), 0, <usize>headDim << 2);
    }
    // out_g = sum_j p[g, j] v_j / sum_g
    for (let j = first; j <= pos; j++) {
      const slot = load<i32>(table + (<usize>(j / bs) << 2)) * bs + j % bs;
      const vp = vc + <usize>slot * rowB + kvOff;
      for (let g = 0; g < group; g++) {
        kvAxpy(dt, o0 + (<usize>(g * headDim) << 2), load<f32>(scratch + (<usize>(g * n + j - first) << 2)), vp, headDim);
      }
    }
    for (let g = 0; g < group; g++) {
      const inv = load<f32>(scratch + (<usize>(group * n + g) << 2));
      const op = o0 + (<usize>(g * headDim) << 2);
      for (let d = 0; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(op + (<usize>d << 2)) * inv);
    }
  }
}

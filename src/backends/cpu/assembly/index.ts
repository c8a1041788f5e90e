// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * The kernel module's entry: the program interpreter and the thread pool's shared-memory
 * protocol. JS writes a program (a list of kernel calls, 32 i32 words each) into shared
 * memory and calls dispatch(); every thread of the pool runs the whole program, each
 * kernel taking its own share of the work, with a barrier between kernels. So one
 * wake-up serves a whole forward pass. Word layouts are mirrored in ../program.ts.
 */
import { matmul } from "./matmul";
import { dequantRowsShare, matmulQ } from "./qmatmul";
import { dequantRowsKShare, isKQuant, matmulK } from "./kquant";
import { quantRowsI8Share } from "./qmatmul-rows";
export { packedKernel } from "./qmatmul";
export { matmulStaged, matvecSequential } from "./matmul";
import { addRmsnorm, rmsnorm } from "./norm";
import { elementwise, embedding, gatherRows, kvWrite, siluMul, sliceCols } from "./elementwise";
import { qkvPrep, rope } from "./rope";
import { attention } from "./attention";
import { gatherKv, softmaxCausal } from "./attention-blas";
import { argmax, readSum, topk } from "./sample";
import { arg } from "./simd";
import { widenRowsShare } from "./widen";

// control block words (byte offset = 4 * word); barrier and completion on their own cache lines
const C_GEN = 0, C_PROG = 1, C_NTH = 2, C_ERROR = 3, C_QUIT = 4, C_SCRATCH = 5, C_SCRATCH_STRIDE = 6, C_NWORKERS = 7, C_IDLE = 8, C_SPIN = 9;
const C_BAR_COUNT = 16, C_BAR_GEN = 17, C_BAR_WAITERS = 18;
const C_PENDING = 32;

// opcodes; an instruction is 32 words: [opcode | flags, args...]
const OP_END = 0, OP_MATMUL = 1, OP_RMSNORM = 2, OP_ADD_RMSNORM = 3, OP_ELEMENTWISE = 4, OP_SILU_MUL = 5, OP_SLICE_COLS = 6;
const OP_GATHER_ROWS = 7, OP_EMBEDDING = 8, OP_KV_WRITE = 9, OP_ROPE = 10, OP_QKV_PREP = 11, OP_ATTENTION = 12, OP_ARGMAX = 13, OP_TOPK = 14, OP_READ_SUM = 15, OP_MATMUL_Q = 16, OP_WIDEN_ROWS = 17, OP_DEQUANT_ROWS = 18, OP_QUANT_ROWS_I8 = 19, OP_GATHER_KV = 20, OP_SOFTMAX_CAUSAL = 21;
/** Flag: no barrier after this instruction (the next one does not read its output). */
const F_NOBAR = 0x100;
const INSTR_BYTES: usize = 128;

@inline function c(ctrl: usize, w: i32): usize {
  return ctrl + (<usize>w << 2);
}

export function heapBase(): usize {
  return __heap_base;
}

/** Waits until every thread of nth has arrived; false if another thread failed. */
function barrier(ctrl: usize, nth: i32): bool {
  const gen = atomic.load<i32>(c(ctrl, C_BAR_GEN));
  if (atomic.add<i32>(c(ctrl, C_BAR_COUNT), 1) == nth - 1) {
    atomic.store<i32>(c(ctrl, C_BAR_COUNT), 0);
    atomic.add<i32>(c(ctrl, C_BAR_GEN), 1);
    if (atomic.load<i32>(c(ctrl, C_BAR_WAITERS)) > 0) atomic.notify(c(ctrl, C_BAR_GEN));
    return true;
  }
  const spin = load<i32>(c(ctrl, C_SPIN));
  for (let i = 0; i < spin; i++) if (atomic.load<i32>(c(ctrl, C_BAR_GEN)) != gen) return true;
  atomic.add<i32>(c(ctrl, C_BAR_WAITERS), 1);
  while (atomic.load<i32>(c(ctrl, C_BAR_GEN)) == gen) {
    if (atomic.load<i32>(c(ctrl, C_ERROR)) != 0) {
      atomic.sub<i32>(c(ctrl, C_BAR_WAITERS), 1);
      return false;
    }
    memory.atomic.wait32(c(ctrl, C_BAR_GEN), gen, 1000000); // 1 ms, then look at the error flag again
  }
  atomic.sub<i32>(c(ctrl, C_BAR_WAITERS), 1);
  return true;
}

/** Runs every instruction of the program as thread tid of nth. */
export function runProgram(ctrl: usize, prog: usize, tid: i32, nth: i32): bool {
  const scratchBytes = load<i32>(c(ctrl, C_SCRATCH_STRIDE));
  const scratch = <usize>load<i32>(c(ctrl, C_SCRATCH)) + <usize>tid * <usize>scratchBytes;
  for (let p = prog; ; p += INSTR_BYTES) {
    const word = load<i32>(p);
    const op = word & 0xff;
    const a = p + 4;
    if (op == OP_END) return true;
    else if (op == OP_MATMUL) matmul(tid, nth, scratch, scratchBytes, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7), arg(a, 8));
    else if (op == OP_MATMUL_Q && isKQuant(arg(a, 5))) matmulK(tid, nth, scratch, scratchBytes, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 5), arg(a, 7), arg(a, 8), arg(a, 9), arg(a, 10)); // K-quants: no scales / zeros / group words
    else if (op == OP_MATMUL_Q) matmulQ(tid, nth, scratch, scratchBytes, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7), arg(a, 8), arg(a, 9), arg(a, 10));
    else if (op == OP_RMSNORM) rmsnorm(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), reinterpret<f32>(arg(a, 5)));
    else if (op == OP_ADD_RMSNORM) addRmsnorm(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), reinterpret<f32>(arg(a, 7)));
    else if (op == OP_ELEMENTWISE) elementwise(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4));
    else if (op == OP_SILU_MUL) siluMul(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3));
    else if (op == OP_SLICE_COLS) sliceCols(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5));
    else if (op == OP_GATHER_ROWS) gatherRows(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4));
    else if (op == OP_EMBEDDING) embedding(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5));
    else if (op == OP_KV_WRITE) kvWrite(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7), arg(a, 8));
    else if (op == OP_ROPE) rope(tid, nth, scratch, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7), arg(a, 8));
    else if (op == OP_QKV_PREP) qkvPrep(tid, nth, scratch, a);
    else if (op == OP_ATTENTION) attention(tid, nth, scratch, a);
    else if (op == OP_ARGMAX) argmax(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3));
    else if (op == OP_READ_SUM) readSum(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2));
    else if (op == OP_WIDEN_ROWS) widenRowsShare(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7));
    else if (op == OP_DEQUANT_ROWS && isKQuant(arg(a, 4))) dequantRowsKShare(tid, nth, arg(a, 0), arg(a, 1), arg(a, 4), arg(a, 6), arg(a, 7), arg(a, 8));
    else if (op == OP_QUANT_ROWS_I8) quantRowsI8Share(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3));
    else if (op == OP_DEQUANT_ROWS) dequantRowsShare(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4), arg(a, 5), arg(a, 6), arg(a, 7), arg(a, 8));
    else if (op == OP_GATHER_KV) gatherKv(tid, nth, a);
    else if (op == OP_SOFTMAX_CAUSAL) softmaxCausal(tid, nth, a);
    else if (op == OP_TOPK) topk(tid, nth, arg(a, 0), arg(a, 1), arg(a, 2), arg(a, 3), arg(a, 4));
    else unreachable();
    if ((word & F_NOBAR) == 0 && nth > 1 && !barrier(ctrl, nth)) return false;
  }
  return true;
}

/** A worker's life: sleep until a program newer than generation `seen` is published, run it, report done. */
export function workerLoop(ctrl: usize, tid: i32, seen: i32): void {
  while (true) {
    const spin = load<i32>(c(ctrl, C_SPIN));
    for (let i = 0; atomic.load<i32>(c(ctrl, C_GEN)) == seen; i++) {
      if (i < spin) continue;
      atomic.add<i32>(c(ctrl, C_IDLE), 1);
      memory.atomic.wait32(c(ctrl, C_GEN), seen, -1);
      atomic.sub<i32>(c(ctrl, C_IDLE), 1);
    }
    seen = atomic.load<i32>(c(ctrl, C_GEN));
    if (atomic.load<i32>(c(ctrl, C_QUIT)) != 0) return;
    const nth = load<i32>(c(ctrl, C_NTH));
    if (tid < nth) runProgram(ctrl, <usize>load<i32>(c(ctrl, C_PROG)), tid, nth);
    if (atomic.sub<i32>(c(ctrl, C_PENDING), 1) == 1) atomic.notify(c(ctrl, C_PENDING));
  }
}

/** Wakes the workers (all of them, so QUIT reaches everyone). */
export function publish(ctrl: usize, prog: usize, nth: i32): void {
  store<i32>(c(ctrl, C_PROG), <i32>prog);
  store<i32>(c(ctrl, C_NTH), nth);
  atomic.store<i32>(c(ctrl, C_PENDING), load<i32>(c(ctrl, C_NWORKERS)));
  atomic.add<i32>(c(ctrl, C_GEN), 1);
  if (atomic.load<i32>(c(ctrl, C_IDLE)) > 0) atomic.notify(c(ctrl, C_GEN));
}

/** Waits until every worker has finished the published program. */
export function waitWorkers(ctrl: usize): void {
  const spin = load<i32>(c(ctrl, C_SPIN));
  for (let i = 0; ; i++) {
    const v = atomic.load<i32>(c(ctrl, C_PENDING));
    if (v == 0) return;
    if (i >= spin) memory.atomic.wait32(c(ctrl, C_PENDING), v, 1000000);
  }
}

/** Runs a program on nth threads, the caller being thread 0; false if a thread failed. */
export function dispatch(ctrl: usize, prog: usize, nth: i32): bool {
  publish(ctrl, prog, nth);
  const ok = runProgram(ctrl, prog, 0, nth);
  waitWorkers(ctrl);
  return ok && atomic.load<i32>(c(ctrl, C_ERROR)) == 0;
}

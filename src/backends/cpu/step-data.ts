/**
 * A StepBatch in shared memory, where the kernels read it: a 16-word header of sizes
 * and pointers (layout mirrored in assembly/attention.ts), then the arrays. Block
 * tables are flattened to [S, maxBlocks]; tokenSeq [T] names each token's sequence.
 * The sync words are the kernels', not the step's: attention counts the threads that
 * finished parts of a split unit there (zero between calls; nothing here writes them).
 */
import type { StepBatch } from "../../graph/step-batch.js";
import type { WasmHeap } from "./heap.js";

const H_T = 0, H_S = 1, H_IDS = 2, H_POS = 3, H_SEQSTARTS = 4, H_CTX = 5, H_TABLES = 6, H_MAXBLOCKS = 7, H_SLOTS = 8, H_LOGITROWS = 9, H_R = 10, H_TOKSEQ = 11, H_SYNC = 12;
/** Sync words (assembly/attention.ts SYNC_THREADS: counters, then scratch pointers). */
const SYNC_WORDS = 2 * 64;

interface Capacity {
  T: number;
  S: number;
  R: number;
  blocks: number;
}

export class StepData {
  readonly ptr: number;
  private readonly head: Int32Array;

  private constructor(
    private readonly heap: WasmHeap,
    readonly cap: Capacity,
  ) {
    const words = 16 + SYNC_WORDS + 4 * cap.T + 2 * (cap.S + 1) + cap.R + cap.S * cap.blocks;
    this.ptr = heap.alloc(words * 4, "step batch");
    this.head = heap.i32(this.ptr, 16);
    let at = this.ptr + 64;
    const take = (n: number) => ((at += n * 4), at - n * 4);
    this.head[H_SYNC] = take(SYNC_WORDS);
    this.head[H_IDS] = take(cap.T);
    this.head[H_POS] = take(cap.T);
    this.head[H_SLOTS] = take(cap.T);
    this.head[H_TOKSEQ] = take(cap.T);
    this.head[H_SEQSTARTS] = take(cap.S + 1);
    this.head[H_CTX] = take(cap.S + 1);
    this.head[H_LOGITROWS] = take(cap.R);
    this.head[H_TABLES] = take(cap.S * cap.blocks);
  }

  static forStep(heap: WasmHeap, step: StepBatch): StepData {
    return new StepData(heap, needs(step));
  }

  static withCapacity(heap: WasmHeap, cap: Capacity): StepData {
    return new StepData(heap, cap);
  }

  /** True when the step fits this buffer. */
  fits(step: StepBatch): boolean {
    const n = needs(step);
    return n.T <= this.cap.T && n.S <= this.cap.S && n.R <= this.cap.R && n.blocks <= this.cap.blocks;
  }

  /** Pointer to an array of the header (for kernel arguments). */
  field(which: "ids" | "positions" | "slots" | "logitRows"): number {
    return this.head[{ ids: H_IDS, positions: H_POS, slots: H_SLOTS, logitRows: H_LOGITROWS }[which]];
  }

  /** Pointer to sequence s's row of the block tables [maxBlocks]. */
  table(s: number): number {
    return this.head[H_TABLES] + s * this.cap.blocks * 4;
  }

  write(step: StepBatch): void {
    const S = step.seqStarts.length - 1;
    const T = step.numTokens;
    const h = this.head;
    const arr = (p: number, n: number) => this.heap.i32(p, n);
    h[H_T] = T;
    h[H_S] = S;
    h[H_R] = step.logitRows.length;
    h[H_MAXBLOCKS] = this.cap.blocks;
    arr(h[H_IDS], T).set(step.tokenIds.subarray(0, T));
    arr(h[H_POS], T).set(step.positions.subarray(0, T));
    arr(h[H_SLOTS], T).set(step.slotMapping.subarray(0, T));
    arr(h[H_SEQSTARTS], S + 1).set(step.seqStarts);
    arr(h[H_CTX], S).set(step.contextLens.subarray(0, S));
    arr(h[H_LOGITROWS], step.logitRows.length).set(step.logitRows);
    const tokSeq = arr(h[H_TOKSEQ], T);
    const tables = arr(h[H_TABLES], S * this.cap.blocks);
    for (let s = 0; s < S; s++) {
      tokSeq.fill(s, step.seqStarts[s], step.seqStarts[s + 1]);
      tables.set(step.blockTables[s], s * this.cap.blocks);
    }
  }
}

function needs(step: StepBatch): Capacity {
  const S = step.seqStarts.length - 1;
  return { T: Math.max(1, step.numTokens), S: Math.max(1, S), R: Math.max(1, step.logitRows.length), blocks: Math.max(1, ...step.blockTables.map((t) => t.length)) };
}

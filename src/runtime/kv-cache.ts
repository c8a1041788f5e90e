/**
 * The paged KV cache's bookkeeping: a pool of fixed-size blocks handed to sequences.
 * The backend owns the memory; this owns which block belongs to whom.
 */
import type { Sequence } from "./sequence.js";

export class BlockPool {
  private readonly free: number[];

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    // pop() hands out low ids first
    this.free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get numFree(): number {
    return this.free.length;
  }

  /** Blocks a sequence needs to hold `numTokens` tokens beyond what it has. */
  blocksNeeded(seq: Sequence, numTokens: number): number {
    return Math.max(0, Math.ceil(numTokens / this.blockSize) - seq.blockTable.length);
  }

  /** Grows seq's block table to hold numTokens; false (and no change) if the pool is short. */
  reserve(seq: Sequence, numTokens: number): boolean {
    const need = this.blocksNeeded(seq, numTokens);
    if (need > this.free.length) return false;
    for (let i = 0; i < need; i++) seq.blockTable.push(this.free.pop()!);
    return true;
  }

  /** Returns all of seq's blocks to the pool. */
  release(seq: Sequence): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) this.free.push(seq.blockTable[i]);
    seq.blockTable = [];
  }
}

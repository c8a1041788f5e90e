/**
 * The paged KV cache's bookkeeping: a pool of fixed-size blocks handed to sequences.
 * The backend owns the memory; this owns which block belongs to whom.
 *
 * Prefix caching: once a block is full and computed it is registered under a chained
 * hash of its tokens. A new sequence whose prompt starts with the same tokens takes
 * those blocks by reference instead of recomputing them. Freed blocks keep their
 * contents and key until the pool needs them again (least recently freed first).
 */
import { blockKey, type BlockKey } from "./block-hash.js";
import type { Sequence } from "./sequence.js";

interface BlockMeta {
  refCount: number;
  /** Set once the block is full, computed and registered for reuse. */
  key: BlockKey | null;
  /** The block's tokens, to confirm a key match. */
  tokens: number[] | null;
}

export interface PrefixCacheStats {
  /** Prompt tokens looked up in the prefix cache. */
  queries: number;
  /** Of those, tokens found cached. */
  hits: number;
}

export class BlockPool {
  private readonly meta: BlockMeta[];
  /** Blocks with refCount 0, least recently freed first (a Map keeps insertion order). */
  private readonly free = new Map<number, true>();
  private readonly cached = new Map<BlockKey, number>();
  readonly prefixStats: PrefixCacheStats = { queries: 0, hits: 0 };

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly prefixCaching = true,
  ) {
    this.meta = Array.from({ length: numBlocks }, () => ({ refCount: 0, key: null, tokens: null }));
    for (let i = 0; i < numBlocks; i++) this.free.set(i, true);
  }

  get numFree(): number {
    return this.free.size;
  }

  /** Blocks a sequence needs to hold `numTokens` tokens beyond what it has. */
  blocksNeeded(seq: Sequence, numTokens: number): number {
    return Math.max(0, Math.ceil(numTokens / this.blockSize) - seq.blockTable.length);
  }

  /**
   * For a sequence holding no blocks: takes the longest cached prefix of its tokens
   * (leaving at least one token to compute, whose logits are needed) and marks those
   * tokens computed. Returns the number of tokens reused.
   */
  acquirePrefix(seq: Sequence): number {
    if (seq.blockTable.length > 0) throw new Error(`sequence ${seq.id} already holds blocks`);
    seq.blockKeys = [];
    if (!this.prefixCaching || seq.wantsPromptLogits) return 0;
    const maxBlocks = Math.floor((seq.numTokens - 1) / this.blockSize);
    let prev: BlockKey | null = null;
    for (let b = 0; b < maxBlocks; b++) {
      const key = blockKey(prev, seq.tokens, b * this.blockSize, this.blockSize);
      const id = this.cached.get(key);
      if (id === undefined || !this.sameTokens(id, seq.tokens, b * this.blockSize)) break;
      this.ref(id);
      seq.blockTable.push(id);
      seq.blockKeys.push(key);
      prev = key;
    }
    seq.numComputed = seq.blockTable.length * this.blockSize;
    return seq.numComputed;
  }

  /** Counts one admitted prompt lookup in the hit-rate statistics. */
  recordLookup(queried: number, hit: number): void {
    this.prefixStats.queries += queried;
    this.prefixStats.hits += hit;
  }

  /** Grows seq's block table to hold numTokens; false (and no change) if the pool is short. */
  reserve(seq: Sequence, numTokens: number): boolean {
    const need = this.blocksNeeded(seq, numTokens);
    if (need > this.free.size) return false;
    for (let i = 0; i < need; i++) seq.blockTable.push(this.takeFree());
    return true;
  }

  /** Registers seq's blocks that are now full and computed, so later prompts can reuse them. */
  commitFull(seq: Sequence): void {
    if (!this.prefixCaching) return;
    const full = Math.floor(seq.numComputed / this.blockSize);
    for (let b = seq.blockKeys.length; b < full; b++) {
      const key = blockKey(b === 0 ? null : seq.blockKeys[b - 1], seq.tokens, b * this.blockSize, this.blockSize);
      seq.blockKeys.push(key);
      const id = seq.blockTable[b];
      if (this.cached.has(key)) continue; // an identical block is already registered
      const m = this.meta[id];
      m.key = key;
      m.tokens = seq.tokens.slice(b * this.blockSize, (b + 1) * this.blockSize);
      this.cached.set(key, id);
    }
  }

  /** Returns all of seq's blocks; the last ones go first to the eviction queue. */
  release(seq: Sequence): void {
    for (let i = seq.blockTable.length - 1; i >= 0; i--) this.unref(seq.blockTable[i]);
    seq.blockTable = [];
    seq.blockKeys = [];
  }

  private ref(id: number): void {
    if (this.meta[id].refCount++ === 0) this.free.delete(id);
  }

  private unref(id: number): void {
    const m = this.meta[id];
    if (m.refCount <= 0) throw new Error(`KV block ${id} freed twice`);
    if (--m.refCount === 0) this.free.set(id, true);
  }

  /** Takes the least recently freed block, evicting whatever it cached. */
  private takeFree(): number {
    const id = this.free.keys().next().value as number;
    this.free.delete(id);
    const m = this.meta[id];
    if (m.key !== null && this.cached.get(m.key) === id) this.cached.delete(m.key);
    m.key = null;
    m.tokens = null;
    m.refCount = 1;
    return id;
  }

  private sameTokens(id: number, tokens: readonly number[], start: number): boolean {
    const t = this.meta[id].tokens!;
    for (let i = 0; i < this.blockSize; i++) if (t[i] !== tokens[start + i]) return false;
    return true;
  }

  /** Checks the pool's invariants (tests): refcounts match the holders, free set matches refcount 0. */
  checkInvariants(holders: readonly Sequence[]): void {
    const counts = new Array<number>(this.numBlocks).fill(0);
    for (const s of holders) for (const b of s.blockTable) counts[b]++;
    for (let i = 0; i < this.numBlocks; i++) {
      if (counts[i] !== this.meta[i].refCount) throw new Error(`block ${i}: refCount ${this.meta[i].refCount}, held ${counts[i]} times`);
      if ((counts[i] === 0) !== this.free.has(i)) throw new Error(`block ${i}: free-set membership wrong`);
    }
    for (const [key, id] of this.cached) if (this.meta[id].key !== key) throw new Error(`cached key ${key} points at block ${id} keyed ${this.meta[id].key}`);
  }
}

/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen2): the text is split into words by a regex
 * pre-tokenizer, each word's UTF-8 bytes are spelled in GPT-2's byte alphabet, and
 * adjacent symbols are merged by merge rank (lowest first, leftmost on ties).
 */
import { fromByteLevel, toByteLevel } from "./byte-level.js";
import type { PreTokenizer } from "./bpe-pre.js";
import { Heap } from "./heap.js";
import { VocabTokenizer, type VocabSpec } from "./vocab-tokenizer.js";
import type { Fragment } from "./vocab.js";

export interface BpeSpec extends VocabSpec {
  /** Merge rules, highest priority first, each "left right" in the byte alphabet. */
  merges: readonly string[];
  preTokenize: PreTokenizer;
  /** A word that is itself a token is emitted whole, without merging (Llama 3). */
  ignoreMerges: boolean;
}

interface Bigram {
  left: number;
  right: number;
  rank: number;
  text: string;
}

const bigramBefore = (a: Bigram, b: Bigram) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

/** Words seen recently and their ids; chat prompts repeat words a lot. */
const WORD_CACHE_LIMIT = 20000;

export class BpeTokenizer extends VocabTokenizer {
  readonly kind = "bpe" as const;
  private readonly ranks = new Map<string, number>();
  private readonly preTokenize: PreTokenizer;
  private readonly ignoreMerges: boolean;
  private readonly cache = new Map<string, number[]>();

  constructor(spec: BpeSpec) {
    super(spec);
    spec.merges.forEach((m, i) => {
      if (!this.ranks.has(m)) this.ranks.set(m, i);
    });
    this.preTokenize = spec.preTokenize;
    this.ignoreMerges = spec.ignoreMerges;
  }

  protected get stripsDummyPrefix(): boolean {
    return false;
  }

  protected encodeFragments(frags: Fragment[], out: number[]): void {
    for (const f of frags) {
      if (typeof f === "number") {
        out.push(f);
        continue;
      }
      for (const word of this.preTokenize(f)) {
        let ids = this.cache.get(word);
        if (ids === undefined) {
          ids = this.encodeWord(toByteLevel(word));
          if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
          this.cache.set(word, ids);
        }
        for (const id of ids) out.push(id);
      }
    }
  }

  private encodeWord(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.toId.get(word);
      if (whole !== undefined) return [whole];
    }
    const sym = Array.from(word);
    const n = sym.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new Heap<Bigram>(bigramBefore);
    const tryAdd = (l: number, r: number) => {
      if (l < 0 || r < 0) return;
      const rank = this.ranks.get(sym[l] + " " + sym[r]);
      if (rank !== undefined) heap.push({ left: l, right: r, rank, text: sym[l] + sym[r] });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    for (let bg = heap.pop(); bg !== undefined; bg = heap.pop()) {
      const { left: l, right: r } = bg;
      if (sym[l].length === 0 || sym[r].length === 0 || sym[l] + sym[r] !== bg.text) continue; // stale
      sym[l] = bg.text;
      sym[r] = "";
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      tryAdd(prev[l], l);
      tryAdd(l, next[l]);
    }
    const ids: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]) {
      const id = this.toId.get(sym[i]);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // A symbol the merges made but the vocabulary lacks: fall back to its single characters.
      for (const ch of sym[i]) {
        const cid = this.toId.get(ch);
        if (cid !== undefined) ids.push(cid);
        else if (this.unkId !== null) ids.push(this.unkId);
      }
    }
    return ids;
  }

  protected normalBytes(id: number): Uint8Array {
    return fromByteLevel(this.tokens[id]);
  }
}

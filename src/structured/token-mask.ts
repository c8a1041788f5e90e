/**
 * The tokens allowed in one automaton state: a walk of the vocabulary trie that
 * steps the automaton along each edge and abandons a subtree at the first refused
 * byte. End-of-text tokens are not in the mask; the caller allows them in
 * accepting states.
 */
import type { ByteMachine } from "./machine.js";
import type { TokenTrie } from "./token-trie.js";

export interface TokenMask {
  /** One bit per token id (bit id & 31 of word id >> 5). */
  readonly bits: Uint32Array;
  /** The allowed ids, ascending, when they are few (applying the mask is then O(allowed)); else null. */
  readonly ids: Int32Array | null;
  /** How many tokens are allowed. */
  readonly count: number;
}

/** Masks with at most this share of the vocabulary allowed also keep an id list. */
const SPARSE = 1 / 8;

export function computeMask<S>(trie: TokenTrie, m: ByteMachine<S>, state: S, vocabSize: number): TokenMask {
  const bits = new Uint32Array((vocabSize + 31) >>> 5);
  const { byte, firstChild, nextSibling, tokenStart, tokenIds } = trie;
  const nodes: number[] = [];
  const states: S[] = [];
  for (let c = firstChild[0]; c >= 0; c = nextSibling[c]) {
    nodes.push(c);
    states.push(state);
  }
  let count = 0;
  while (nodes.length > 0) {
    const n = nodes.pop()!;
    const next = m.step(states.pop()!, byte[n]);
    if (next === null) continue;
    for (let i = tokenStart[n]; i < tokenStart[n + 1]; i++) {
      const id = tokenIds[i];
      bits[id >>> 5] |= 1 << (id & 31);
      count++;
    }
    for (let c = firstChild[n]; c >= 0; c = nextSibling[c]) {
      nodes.push(c);
      states.push(next);
    }
  }
  let ids: Int32Array | null = null;
  if (count <= vocabSize * SPARSE) {
    ids = new Int32Array(count);
    let k = 0;
    for (let w = 0; w < bits.length; w++) {
      for (let x = bits[w]; x !== 0; x &= x - 1) ids[k++] = (w << 5) | (31 - Math.clz32(x & -x));
    }
  }
  return { bits, ids, count };
}

export function maskHas(mask: TokenMask, id: number): boolean {
  return (mask.bits[id >>> 5] & (1 << (id & 31))) !== 0;
}

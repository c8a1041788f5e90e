/**
 * The tokens allowed in one automaton state: a walk of the vocabulary trie that
 * steps the automaton along each edge and abandons a subtree at the first refused
 * byte. End-of-text tokens are not in the mask; the caller allows them in
 * accepting states.
 */
import { DfaMachine, STATE_SCALE } from "./dfa-machine.js";
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
  const count = m instanceof DfaMachine ? walkDfa(trie, m, state as number, bits) : walk(trie, m, state, bits);
  return finish(bits, count, vocabSize);
}

/** The generic walk: one machine step per trie edge, a subtree dropped at the first refused byte. */
function walk<S>(trie: TokenTrie, m: ByteMachine<S>, state: S, bits: Uint32Array): number {
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
  return count;
}

let dfaNodes = new Int32Array(0);
let dfaStates = new Float64Array(0);

/**
 * The same walk for a DFA, with typed-array stacks and the ASCII table read inline
 * (most token bytes are ASCII and most states have no character in progress): about
 * a quarter faster than the generic walk on Llama 2's 32k vocabulary.
 */
function walkDfa(trie: TokenTrie, m: DfaMachine, state: number, bits: Uint32Array): number {
  const { byte, firstChild, nextSibling, tokenStart, tokenIds } = trie;
  const ascii = m.dfa.ascii;
  if (dfaNodes.length < trie.numNodes) {
    dfaNodes = new Int32Array(trie.numNodes);
    dfaStates = new Float64Array(trie.numNodes);
  }
  const nodes = dfaNodes;
  const states = dfaStates;
  let sp = 0;
  for (let c = firstChild[0]; c >= 0; c = nextSibling[c]) {
    nodes[sp] = c;
    states[sp++] = state;
  }
  let count = 0;
  while (sp > 0) {
    const n = nodes[--sp];
    const s = states[sp];
    const b = byte[n];
    let next: number;
    const q = s / STATE_SCALE;
    if (b < 0x80 && q === Math.floor(q)) {
      const t = ascii[q * 128 + b];
      if (t < 0) continue;
      next = t * STATE_SCALE;
    } else {
      const r = m.step(s, b);
      if (r === null) continue;
      next = r;
    }
    for (let i = tokenStart[n]; i < tokenStart[n + 1]; i++) {
      const id = tokenIds[i];
      bits[id >>> 5] |= 1 << (id & 31);
      count++;
    }
    for (let c = firstChild[n]; c >= 0; c = nextSibling[c]) {
      nodes[sp] = c;
      states[sp++] = next;
    }
  }
  return count;
}

function finish(bits: Uint32Array, count: number, vocabSize: number): TokenMask {
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

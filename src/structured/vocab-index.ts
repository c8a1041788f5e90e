/** Per tokenizer, built once: each token's bytes and the trie over them. */
import type { Tokenizer } from "../tokenizer/types.js";
import { tokenByteTable } from "./token-bytes.js";
import { TokenTrie } from "./token-trie.js";

export interface VocabIndex {
  readonly vocabSize: number;
  /** Per token: the bytes it adds, or null for tokens a constraint never allows. */
  readonly bytes: readonly (Uint8Array | null)[];
  readonly trie: TokenTrie;
  /** End-of-text tokens (the tokenizer's EOS list). */
  readonly eosIds: readonly number[];
}

const cache = new WeakMap<Tokenizer, VocabIndex>();

export function vocabIndex(tok: Tokenizer): VocabIndex {
  let v = cache.get(tok);
  if (v === undefined) {
    const bytes = tokenByteTable(tok);
    v = { vocabSize: tok.vocabSize, bytes, trie: new TokenTrie(bytes), eosIds: tok.eosIds };
    cache.set(tok, v);
  }
  return v;
}

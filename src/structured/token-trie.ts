/**
 * A byte trie over a vocabulary's token texts, in flat arrays. A mask walk steps the
 * automaton once per trie edge and drops a whole subtree at the first refused byte,
 * so tokens sharing a prefix share the work (32k tokens have ~100k trie nodes, and
 * most subtrees die within a byte or two).
 */
export class TokenTrie {
  /** Node 0 is the root. Per node: its byte, first child, next sibling (-1 = none). */
  readonly byte: Uint8Array;
  readonly firstChild: Int32Array;
  readonly nextSibling: Int32Array;
  /** Tokens whose text ends at a node (CSR: tokenStart[n]..tokenStart[n+1] in tokenIds). */
  readonly tokenStart: Int32Array;
  readonly tokenIds: Int32Array;
  readonly numNodes: number;

  constructor(tokens: readonly (Uint8Array | null)[]) {
    // Children kept in Maps while building, flattened after.
    const kids: Map<number, number>[] = [new Map()];
    const bytes: number[] = [0];
    const ends: number[][] = [[]];
    tokens.forEach((t, id) => {
      if (t === null || t.length === 0) return;
      let n = 0;
      for (const b of t) {
        let c = kids[n].get(b);
        if (c === undefined) {
          c = kids.length;
          kids.push(new Map());
          bytes.push(b);
          ends.push([]);
          kids[n].set(b, c);
        }
        n = c;
      }
      ends[n].push(id);
    });
    const N = kids.length;
    this.numNodes = N;
    this.byte = Uint8Array.from(bytes);
    this.firstChild = new Int32Array(N).fill(-1);
    this.nextSibling = new Int32Array(N).fill(-1);
    for (let n = 0; n < N; n++) {
      let prev = -1;
      for (const c of [...kids[n].values()].sort((a, b) => bytes[a] - bytes[b])) {
        if (prev < 0) this.firstChild[n] = c;
        else this.nextSibling[prev] = c;
        prev = c;
      }
    }
    this.tokenStart = new Int32Array(N + 1);
    const ids: number[] = [];
    for (let n = 0; n < N; n++) {
      this.tokenStart[n] = ids.length;
      ids.push(...ends[n]);
    }
    this.tokenStart[N] = ids.length;
    this.tokenIds = Int32Array.from(ids);
  }
}

/**
 * SentencePiece BPE (the Llama / Mistral / Phi-3 family): the text's spaces become "▁",
 * a dummy "▁" goes in front, then adjacent symbols are merged greedily by the score of
 * the merged piece (highest first, leftmost on ties) exactly as sentencepiece's
 * bpe_model.cc does; symbols left outside the vocabulary fall back to <0xXX> byte
 * tokens (or <unk>).
 */
import { TokenizerError } from "../errors.js";
import { Heap } from "./heap.js";
import { VocabTokenizer, type VocabSpec } from "./vocab-tokenizer.js";
import { TokenType, type Fragment } from "./vocab.js";

export const SPACE = "\u2581"; // ▁

export interface SpmSpec extends VocabSpec {
  /** One score per token; the merge priority of the piece. */
  scores: Float32Array;
  /** Prepend "▁" to each text run (SentencePiece add_dummy_prefix / GGUF add_space_prefix). */
  addSpacePrefix: boolean;
  /** Collapse runs of spaces and trim (SentencePiece remove_extra_whitespaces; off for Llama). */
  removeExtraWhitespaces?: boolean;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  /** Length of the merged text, to detect bigrams made stale by another merge. */
  len: number;
}

const bigramBefore = (a: Bigram, b: Bigram) => a.score > b.score || (a.score === b.score && a.left < b.left);

export class SpmTokenizer extends VocabTokenizer {
  readonly kind = "spm" as const;
  readonly scores: Float32Array;
  readonly addSpacePrefix: boolean;
  private readonly removeExtraWs: boolean;
  /** id of <0xXX> for each byte, -1 where the vocabulary lacks it. */
  private readonly byteIds: Int32Array;
  /** Whether unknown symbols become <0xXX> tokens (the vocabulary has byte pieces) rather than <unk>. */
  private readonly byteFallback: boolean;

  constructor(spec: SpmSpec) {
    super(spec);
    if (spec.scores.length !== spec.tokens.length) {
      throw new TokenizerError(spec.source, `${spec.tokens.length} tokens but ${spec.scores.length} scores`, "the vocabulary file is inconsistent; re-export it");
    }
    this.scores = spec.scores;
    this.addSpacePrefix = spec.addSpacePrefix;
    this.removeExtraWs = spec.removeExtraWhitespaces ?? false;
    this.byteIds = new Int32Array(256).fill(-1);
    for (let i = 0; i < spec.tokens.length; i++) {
      if (spec.types[i] !== TokenType.Byte) continue;
      const b = parseBytePiece(spec.tokens[i]);
      if (b !== null && this.byteIds[b] < 0) this.byteIds[b] = i;
    }
    this.byteFallback = this.byteIds.some((x) => x >= 0);
  }

  protected get stripsDummyPrefix(): boolean {
    return this.addSpacePrefix;
  }

  protected encodeFragments(frags: Fragment[], out: number[]): void {
    // As llama.cpp: a text run at the start or right after a special token gets the dummy prefix.
    let prevSpecial = true;
    for (const f of frags) {
      if (typeof f === "number") {
        out.push(f);
        prevSpecial = true;
        continue;
      }
      let text = this.removeExtraWs ? f.replace(/ +/g, " ").replace(/^ | $/g, "") : f;
      if (text.length === 0) continue;
      if (this.addSpacePrefix && prevSpecial) text = " " + text;
      this.encodeNormalized(text.replaceAll(" ", SPACE), out);
      prevSpecial = false;
    }
  }

  /** BPE over one already-normalized run ("▁" for spaces). */
  private encodeNormalized(text: string, out: number[]): void {
    const sym = Array.from(text); // code points
    const n = sym.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    // For merges into "unused" pieces: which two symbols made them, to split them back after.
    const revMerge = new Map<string, [string, string]>();
    const heap = new Heap<Bigram>(bigramBefore);
    const tryAdd = (l: number, r: number) => {
      if (l < 0 || r < 0) return;
      const merged = sym[l] + sym[r];
      const id = this.toId.get(merged);
      if (id === undefined) return;
      const ty = this.types[id];
      // sentencepiece only merges into normal, user-defined and unused pieces.
      if (ty !== TokenType.Normal && ty !== TokenType.UserDefined && ty !== TokenType.Unused) return;
      heap.push({ left: l, right: r, score: this.scores[id], len: merged.length });
      if (ty === TokenType.Unused) revMerge.set(merged, [sym[l], sym[r]]);
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    for (let bg = heap.pop(); bg !== undefined; bg = heap.pop()) {
      const { left: l, right: r } = bg;
      if (sym[l].length === 0 || sym[r].length === 0 || sym[l].length + sym[r].length !== bg.len) continue;
      sym[l] += sym[r];
      sym[r] = "";
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      tryAdd(prev[l], l);
      tryAdd(l, next[l]);
    }
    let prevUnk = false;
    const emit = (piece: string) => {
      const id = this.toId.get(piece);
      if (id !== undefined && this.types[id] === TokenType.Unused) {
        const parts = revMerge.get(piece);
        if (parts) {
          emit(parts[0]);
          emit(parts[1]);
          return;
        }
      }
      if (id !== undefined) {
        out.push(id);
        prevUnk = false;
        return;
      }
      if (this.byteFallback) {
        for (const b of Buffer.from(piece, "utf8")) {
          const bid = this.byteIds[b];
          out.push(bid >= 0 ? bid : this.unkOrThrow());
        }
        prevUnk = false;
        return;
      }
      // No byte fallback: one <unk> per run of unknown symbols, as sentencepiece merges them.
      if (!prevUnk) out.push(this.unkOrThrow());
      prevUnk = true;
    };
    for (let i = 0; i >= 0 && i < n; i = next[i]) emit(sym[i]);
  }

  private unkOrThrow(): number {
    if (this.unkId === null) {
      throw new TokenizerError(this.source, "text has a symbol outside the vocabulary, which has neither <0xXX> byte tokens nor <unk>", "remove the character from the input");
    }
    return this.unkId;
  }

  protected normalBytes(id: number): Uint8Array {
    if (this.types[id] === TokenType.Byte) {
      const b = parseBytePiece(this.tokens[id]);
      if (b !== null) return Uint8Array.of(b);
    }
    return Buffer.from(this.tokens[id].replaceAll(SPACE, " "), "utf8");
  }
}

/** "<0x0A>" -> 10; anything else -> null. */
export function parseBytePiece(piece: string): number | null {
  return /^<0x[0-9A-Fa-f]{2}>$/.test(piece) ? parseInt(piece.slice(3, 5), 16) : null;
}

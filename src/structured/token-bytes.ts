/**
 * The bytes each token adds to the output text, once per tokenizer. Constraints are
 * checked against these, so they must be what the detokenizer shows mid-sequence
 * (SentencePiece's "▁the" is " the", not "the"; a byte-fallback token is one byte).
 * Special and control tokens get null: a constraint never allows them (end-of-text
 * tokens are handled apart).
 */
import type { Tokenizer } from "../tokenizer/types.js";

/** Tokenizers built on a vocabulary (GGUF, llama2.c, tokenizer.model) expose exact bytes. */
interface ByteTokenizer {
  tokenBytes(id: number, skipSpecial?: boolean): Uint8Array | null;
}

const cache = new WeakMap<Tokenizer, (Uint8Array | null)[]>();
const utf8 = new TextEncoder();

/** Per token id: its bytes, or null when a constraint must never pick it. Cached per tokenizer. */
export function tokenByteTable(tok: Tokenizer): (Uint8Array | null)[] {
  let t = cache.get(tok);
  if (t === undefined) {
    t = build(tok);
    cache.set(tok, t);
  }
  return t;
}

function build(tok: Tokenizer): (Uint8Array | null)[] {
  const out: (Uint8Array | null)[] = new Array(tok.vocabSize).fill(null);
  const bt = tok as Tokenizer & Partial<ByteTokenizer>;
  const generic = typeof bt.tokenBytes === "function" ? null : new DecodeDiff(tok);
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.isSpecial(id)) continue;
    const b = generic === null ? bt.tokenBytes!(id, true) : generic.bytes(id);
    if (b !== null && b.length > 0) out[id] = b;
  }
  return out;
}

/**
 * Bytes from decode() for tokenizers that only offer text (tokenizer.json): a token's
 * text is decode([anchor, id]) minus decode([anchor]), which keeps a leading space
 * that decoding it alone would drop. Text that is not whole UTF-8 (U+FFFD) is read
 * from the piece instead: "<0xNN>" byte fallback, or GPT-2's byte-to-unicode alphabet.
 */
class DecodeDiff {
  private readonly anchor: number[];
  private readonly anchorText: string;
  private readonly byteOfChar: Map<number, number>;

  constructor(private readonly tok: Tokenizer) {
    const a = tok.encode("a", { addBos: false });
    this.anchor = a.length === 1 ? a : [];
    this.anchorText = tok.decode(this.anchor);
    this.byteOfChar = gpt2ByteDecoder();
  }

  bytes(id: number): Uint8Array | null {
    const piece = this.tok.idToPiece(id) ?? "";
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (hex) return Uint8Array.of(parseInt(hex[1], 16));
    let text = this.tok.decode([...this.anchor, id]);
    text = text.startsWith(this.anchorText) ? text.slice(this.anchorText.length) : this.tok.decode([id]);
    if (!text.includes("\uFFFD")) return utf8.encode(text);
    const out: number[] = [];
    for (const ch of piece) {
      const b = this.byteOfChar.get(ch.codePointAt(0)!);
      if (b === undefined) return null; // neither whole text nor byte-level: leave it out
      out.push(b);
    }
    return Uint8Array.from(out);
  }
}

/** GPT-2's printable stand-ins for bytes, inverted: char code -> byte. */
function gpt2ByteDecoder(): Map<number, number> {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const m = new Map<number, number>();
  for (const b of direct) m.set(b, b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!direct.includes(b)) m.set(256 + n++, b);
  return m;
}

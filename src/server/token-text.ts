/**
 * The text and UTF-8 bytes of one token, for OpenAI-shaped logprobs. Decoding a token
 * alone loses a SentencePiece word-start space ("▁the" -> "the"), and a byte-fallback
 * piece ("<0xE2>") is half a character, so both are handled from the raw piece.
 */
import type { Tokenizer } from "../tokenizer/types.js";

export interface TokenText {
  text: string;
  bytes: number[];
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const encoder = new TextEncoder();

export function tokenText(tok: Tokenizer, id: number): TokenText {
  const piece = tok.idToPiece(id) ?? "";
  const byte = BYTE_PIECE.exec(piece);
  if (byte) {
    const b = parseInt(byte[1], 16);
    return { text: b < 0x80 ? String.fromCharCode(b) : `bytes:\\x${byte[1].toLowerCase()}`, bytes: [b] };
  }
  let text = tok.isSpecial(id) ? piece : tok.decode([id], { skipSpecial: false });
  if (piece.startsWith("\u2581") && !text.startsWith(" ")) text = " " + text;
  return { text, bytes: [...encoder.encode(text)] };
}

/** Memoises tokenText per id (the vocabulary bounds the cache). */
export class TokenTextCache {
  private readonly cache = new Map<number, TokenText>();
  constructor(private readonly tok: Tokenizer) {}

  get(id: number): TokenText {
    let t = this.cache.get(id);
    if (t === undefined) {
      t = tokenText(this.tok, id);
      this.cache.set(id, t);
    }
    return t;
  }
}

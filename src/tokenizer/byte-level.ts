/**
 * GPT-2's byte-level alphabet: every byte gets a printable code point so that BPE
 * merges can be stored as text. Printable Latin-1 bytes map to themselves, the other
 * 68 bytes to U+0100 upwards in byte order (space 0x20 -> "Ġ", newline -> "Ċ").
 */
const BYTE_TO_CHAR: string[] = new Array(256);
const CHAR_TO_BYTE = new Map<string, number>();

{
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const ch = String.fromCodePoint(printable ? b : 256 + extra++);
    BYTE_TO_CHAR[b] = ch;
    CHAR_TO_BYTE.set(ch, b);
  }
}

/** The byte-level spelling of a UTF-8 string. */
export function toByteLevel(text: string): string {
  let s = "";
  for (const b of Buffer.from(text, "utf8")) s += BYTE_TO_CHAR[b];
  return s;
}

/**
 * The bytes a byte-level token stands for. Characters outside the alphabet (a
 * malformed vocabulary) are kept as their own UTF-8 so nothing is silently lost.
 */
export function fromByteLevel(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...Buffer.from(ch, "utf8"));
  }
  return Uint8Array.from(out);
}

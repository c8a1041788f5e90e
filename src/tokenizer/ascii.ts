/**
 * A character-level tokenizer over printable ASCII, for the built-in random-weight
 * models (which have no tokenizer file). ids: 0 <unk>, 1 <s>, 2 </s>, 3 "\n",
 * 4.. the characters " " to "~". Anything else encodes as <unk>.
 */
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./types.js";

const FIRST = 0x20;
const LAST = 0x7e;
export const ASCII_VOCAB_SIZE = 4 + (LAST - FIRST + 1);

export class AsciiTokenizer implements Tokenizer {
  readonly vocabSize = ASCII_VOCAB_SIZE;
  readonly bosId = 1;
  readonly eosIds = [2];
  readonly addBos = true;
  readonly chatTemplate =
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = opts.addBos ?? this.addBos ? [this.bosId] : [];
    for (const ch of text) {
      const c = ch.codePointAt(0)!;
      ids.push(c === 0x0a ? 3 : c >= FIRST && c <= LAST ? 4 + c - FIRST : 0);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    let s = "";
    for (const id of ids) s += this.piece(id, opts.skipSpecial ?? true);
    return s;
  }

  idToPiece(id: number): string | undefined {
    return id >= 0 && id < this.vocabSize ? this.piece(id, false) : undefined;
  }

  isSpecial(id: number): boolean {
    return id >= 0 && id <= 2;
  }

  private piece(id: number, skipSpecial: boolean): string {
    if (id === 3) return "\n";
    if (id >= 4 && id < this.vocabSize) return String.fromCharCode(FIRST + id - 4);
    if (skipSpecial) return "";
    return ["<unk>", "<s>", "</s>"][id] ?? "";
  }
}

/**
 * What every vocabulary-backed tokenizer (SentencePiece or byte-level BPE) shares:
 * token types, end-of-generation detection and the split of text on special tokens.
 */

/** GGUF / SentencePiece token types (the numbers are the ones GGUF stores). */
export enum TokenType {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

/**
 * Token texts that end a turn in common chat formats. llama.cpp treats them as
 * end-of-generation whatever the file says, so a chat stops at `<|eot_id|>` even
 * when the config only names `<|end_of_text|>` as EOS; we do the same.
 */
export const EOG_TEXTS: readonly string[] = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|eom_id|>",
  "<EOT>",
];

/** EOS first, then every known end-of-turn token present in the vocabulary. */
export function endOfGenerationIds(eosId: number | null, lookup: (text: string) => number | undefined, extra: readonly number[] = []): number[] {
  const out: number[] = [];
  const add = (id: number | null | undefined) => {
    if (id !== null && id !== undefined && id >= 0 && !out.includes(id)) out.push(id);
  };
  add(eosId);
  for (const id of extra) add(id);
  for (const t of EOG_TEXTS) add(lookup(t));
  return out;
}

/** A token matched as a whole in raw text before the model's own algorithm runs. */
export interface SpecialToken {
  id: number;
  text: string;
  /** Drop whitespace on the left / right of a match (HF AddedToken lstrip/rstrip). */
  lstrip?: boolean;
  rstrip?: boolean;
}

/** A piece of input: either raw text for the model's algorithm or an already-known token id. */
export type Fragment = string | number;

/**
 * Splits text on special tokens the way llama.cpp does: longest token text first,
 * every occurrence across all remaining text fragments, then the next shorter one.
 * Returns text fragments (never empty) and token ids in input order.
 */
export function splitOnSpecialTokens(text: string, specials: readonly SpecialToken[]): Fragment[] {
  let frags: Fragment[] = text.length > 0 ? [text] : [];
  for (const sp of specials) {
    if (sp.text.length === 0) continue;
    const next: Fragment[] = [];
    for (const f of frags) {
      if (typeof f === "number" || !f.includes(sp.text)) {
        next.push(f);
        continue;
      }
      let rest = f;
      for (;;) {
        const at = rest.indexOf(sp.text);
        if (at < 0) break;
        let left = rest.slice(0, at);
        if (sp.lstrip) left = left.trimEnd();
        if (left.length > 0) next.push(left);
        next.push(sp.id);
        rest = rest.slice(at + sp.text.length);
        if (sp.rstrip) rest = rest.trimStart();
      }
      if (rest.length > 0) next.push(rest);
    }
    frags = next;
  }
  return frags;
}

/** Sorts special tokens longest text first (ties: lower id first), as the splitter expects. */
export function sortSpecials(list: SpecialToken[]): SpecialToken[] {
  return list.sort((a, b) => b.text.length - a.text.length || a.id - b.id);
}

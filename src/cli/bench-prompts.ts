/**
 * Prompts for `llmrt bench serve`. Random token ids cannot travel as text, so a prompt
 * is words drawn (seeded) from a fixed list of common English words. Most BPE
 * vocabularies hold each of them as one token after a space; the server's /tokenize, when
 * it has one, says how many tokens a word really costs, and the word count is scaled to it.
 */
import { rng } from "./bench-stats.js";

export const PROMPT_WORDS = (
  "the of and to in is was that for it with as on be at by this had not are but from or have an they which one you were all " +
  "we her she there would their will when who him been has more if no out so said what up its about into than them can only " +
  "other new some could time these two may then do first any my now such like our over man me even most made after also did " +
  "many before must through back years where much your way well down should because each just those people how too little " +
  "state good very make world still own see men work long get here between both life being under never day same another know " +
  "while last might us great old year off come since against go came right used take three"
).split(" ");

/** `words` words joined by spaces, drawn from PROMPT_WORDS by a generator seeded with `seed`. */
export function wordPrompt(words: number, seed: number): string {
  const draw = rng(seed);
  return Array.from({ length: Math.max(1, words) }, () => PROMPT_WORDS[draw(PROMPT_WORDS.length)]).join(" ");
}

/** Words for about `tokens` tokens, given what one word costs on this server. */
export function wordsFor(tokens: number, tokensPerWord: number): number {
  return Math.max(1, Math.round(tokens / tokensPerWord));
}

/**
 * Streaming detokenization. Decoding one token alone is wrong twice over: a
 * SentencePiece "▁the" decoded alone loses its space (the dummy-prefix rule), and a
 * byte-fallback token may be half of a UTF-8 character. So each push decodes a small
 * window: a few tokens already shown (for context) plus the new ones, and returns what
 * the window adds beyond its already-shown part, holding text back while it ends in
 * an incomplete character (U+FFFD). Cost per push: the window, not the sequence.
 */
import type { DecodeOptions, Tokenizer } from "./types.js";

/** Tokens of already-shown context kept in front of the new ones. */
const CONTEXT_TOKENS = 6;
/** After this many held-back tokens the text is released even if it ends in U+FFFD (invalid bytes, not a split character). */
const MAX_HELD_TOKENS = 8;

export class IncrementalDetokenizer {
  /** Window of ids: [0, readIdx) already shown (context), [readIdx, end) not yet shown. */
  private window: number[];
  private readIdx: number;
  private readonly opts: DecodeOptions;

  constructor(
    private readonly tokenizer: Tokenizer,
    promptIds: readonly number[] = [],
    opts: DecodeOptions = {},
  ) {
    this.opts = opts;
    // The whole prompt is context when it is short: the start-of-sequence rules (BOS, dummy prefix) then apply as in a full decode.
    const start = Math.max(0, promptIds.length - CONTEXT_TOKENS);
    this.window = promptIds.slice(start);
    this.readIdx = this.window.length;
  }

  /** Adds one generated token; returns the newly complete text (possibly ""). */
  push(id: number): string {
    this.window.push(id);
    const shown = this.tokenizer.decode(this.window.slice(0, this.readIdx), this.opts);
    const all = this.tokenizer.decode(this.window, this.opts);
    const held = this.window.length - this.readIdx;
    if (all.endsWith("\uFFFD") && held < MAX_HELD_TOKENS) return "";
    if (!all.startsWith(shown)) {
      // A decoder that rewrites across the boundary (rare): show the new tokens decoded alone.
      const text = this.tokenizer.decode(this.window.slice(this.readIdx), this.opts);
      this.advance();
      return text;
    }
    this.advance();
    return all.slice(shown.length);
  }

  /** Text still held back (an incomplete character at the end of generation). */
  flush(): string {
    if (this.readIdx === this.window.length) return "";
    const shown = this.tokenizer.decode(this.window.slice(0, this.readIdx), this.opts);
    const all = this.tokenizer.decode(this.window, this.opts);
    this.advance();
    return all.startsWith(shown) ? all.slice(shown.length) : all;
  }

  /** Marks everything shown, keeping the last few tokens as context. */
  private advance(): void {
    const drop = Math.max(0, this.window.length - CONTEXT_TOKENS);
    if (drop > 0) this.window = this.window.slice(drop);
    this.readIdx = this.window.length;
  }
}

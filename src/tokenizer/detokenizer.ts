/**
 * Streaming detokenization. Decoding one token alone is wrong twice over: a
 * SentencePiece "▁the" decoded alone loses its space (the dummy-prefix rule), and a
 * byte-fallback token may be half of a UTF-8 character.
 *
 * Our own vocabularies (GGUF, llama2.c, tokenizer.model) decode as a byte stream, so
 * each token's bytes go through a streaming UTF-8 decoder that holds back an
 * incomplete character: exact, O(1) per token. Other tokenizers (tokenizer.json) are
 * decoded over a small window: a few tokens already shown plus the new ones; the push
 * returns what the window adds beyond its shown part, holding back while it ends in
 * U+FFFD.
 */
import type { DecodeOptions, Tokenizer } from "./types.js";
import type { ByteStepDecoder, DecodeState } from "./vocab-tokenizer.js";

/** Tokens of already-shown context kept in front of the new ones (window mode). */
const CONTEXT_TOKENS = 6;
/** After this many held-back tokens the text is released even if it ends in U+FFFD (invalid bytes, not a split character). */
const MAX_HELD_TOKENS = 8;

interface Stream {
  push(id: number): string;
  flush(): string;
}

export class IncrementalDetokenizer {
  private readonly stream: Stream;

  constructor(tokenizer: Tokenizer, promptIds: readonly number[] = [], opts: DecodeOptions = {}) {
    const t = tokenizer as Tokenizer & Partial<ByteStepDecoder>;
    this.stream = typeof t.decodeStep === "function" ? new ByteStream(t as Tokenizer & ByteStepDecoder, promptIds, opts) : new WindowStream(tokenizer, promptIds, opts);
  }

  /** Adds one generated token; returns the newly complete text (possibly ""). */
  push(id: number): string {
    return this.stream.push(id);
  }

  /** Text still held back (an incomplete character at the end of generation). */
  flush(): string {
    return this.stream.flush();
  }
}

class ByteStream implements Stream {
  private readonly state: DecodeState = { atStart: true };
  private utf8 = new TextDecoder("utf-8");
  private readonly skip: boolean;

  constructor(
    private readonly tok: ByteStepDecoder,
    promptIds: readonly number[],
    opts: DecodeOptions,
  ) {
    this.skip = opts.skipSpecial ?? true;
    // Only two things of the prompt matter: whether a visible token was seen (the
    // dummy-prefix rule), and an incomplete character at its very end (at most 3
    // bytes, so its last 3 tokens). Neither needs the whole prompt decoded.
    for (let i = 0; i < promptIds.length && this.state.atStart; i++) this.tok.decodeStep(promptIds[i], this.state, this.skip);
    const scratch: DecodeState = { atStart: false };
    for (const id of promptIds.slice(-3)) {
      const b = this.tok.decodeStep(id, scratch, this.skip);
      if (b !== null) this.utf8.decode(b, { stream: true });
    }
  }

  push(id: number): string {
    const b = this.tok.decodeStep(id, this.state, this.skip);
    return b === null ? "" : this.utf8.decode(b, { stream: true });
  }

  flush(): string {
    return this.utf8.decode();
  }
}

class WindowStream implements Stream {
  /** Window of ids: [0, readIdx) already shown (context), [readIdx, end) not yet shown. */
  private window: number[];
  private readIdx: number;

  constructor(
    private readonly tok: Tokenizer,
    promptIds: readonly number[],
    private readonly opts: DecodeOptions,
  ) {
    // A short prompt is all context, so start-of-sequence rules (BOS, dummy prefix) apply as in a full decode.
    this.window = promptIds.slice(Math.max(0, promptIds.length - CONTEXT_TOKENS));
    this.readIdx = this.window.length;
  }

  push(id: number): string {
    this.window.push(id);
    const all = this.tok.decode(this.window, this.opts);
    if (all.endsWith("\uFFFD") && this.window.length - this.readIdx < MAX_HELD_TOKENS) return "";
    return this.release(all);
  }

  flush(): string {
    if (this.readIdx === this.window.length) return "";
    return this.release(this.tok.decode(this.window, this.opts));
  }

  /** Returns the unshown part of the window's text and marks it shown, keeping a little context. */
  private release(all: string): string {
    const shown = this.tok.decode(this.window.slice(0, this.readIdx), this.opts);
    // A decoder that rewrites across the boundary (rare) gets the new tokens decoded alone.
    const text = all.startsWith(shown) ? all.slice(shown.length) : this.tok.decode(this.window.slice(this.readIdx), this.opts);
    this.window = this.window.slice(Math.max(0, this.window.length - CONTEXT_TOKENS));
    this.readIdx = this.window.length;
    return text;
  }
}

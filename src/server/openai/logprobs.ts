/**
 * Logprobs in OpenAI's two shapes: the legacy completions one (parallel arrays plus
 * text offsets) and chat's list of {token, logprob, bytes, top_logprobs}.
 */
import type { TextLogprob } from "../worker-protocol.js";

/** JSON has no -Infinity; vLLM sends -9999 for impossible tokens, and so do we. */
const finite = (x: number) => (Number.isFinite(x) ? x : -9999);

export interface CompletionLogprobs {
  tokens: string[];
  /** null for an echoed prompt's first token, which nothing predicts */
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[] | null;
  text_offset: number[];
}

/** A generated token (TextLogprob) or an echoed prompt token (PromptTokenLogprob). */
export interface LogprobEntry {
  text: string;
  logprob: number | null;
  top?: { text: string; logprob: number }[];
}

/**
 * Completions' shape for `entries`, whose first token starts at character `offset` of
 * the choice's text. top_logprobs maps token text -> logprob and, as vLLM's, also
 * holds the sampled token.
 */
export function completionLogprobs(entries: readonly LogprobEntry[], offset: number, withTop: boolean): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: withTop ? [] : null, text_offset: [] };
  for (const e of entries) {
    out.tokens.push(e.text);
    out.token_logprobs.push(e.logprob === null ? null : finite(e.logprob));
    out.text_offset.push(offset);
    offset += e.text.length;
    if (out.top_logprobs) {
      if (e.logprob === null) {
        out.top_logprobs.push(null);
        continue;
      }
      const top: Record<string, number> = {};
      for (const t of e.top ?? []) top[t.text] ??= finite(t.logprob);
      top[e.text] ??= finite(e.logprob);
      out.top_logprobs.push(top);
    }
  }
  return out;
}

/** Characters the entries' token texts add up to (for the next chunk's text_offset). */
export function textLength(entries: readonly LogprobEntry[]): number {
  return entries.reduce((n, e) => n + e.text.length, 0);
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function chatLogprobs(entries: readonly TextLogprob[]): { content: ChatTokenLogprob[]; refusal: null } {
  return {
    content: entries.map((e) => ({
      token: e.text,
      logprob: finite(e.logprob),
      bytes: e.bytes,
      top_logprobs: (e.top ?? []).map((t) => ({ token: t.text, logprob: finite(t.logprob), bytes: t.bytes })),
    })),
    refusal: null,
  };
}

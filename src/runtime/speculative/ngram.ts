/**
 * Prompt-lookup drafting: no extra model. The last `n` tokens (then n-1, ... 1) are
 * searched for earlier in the sequence, most recent match first; the tokens that
 * followed that match are proposed. Pays off when outputs repeat their context.
 */
export function proposeNgram(tokens: readonly number[], k: number, n: number): number[] {
  const L = tokens.length;
  for (let len = Math.min(n, L - 1); len >= 1; len--) {
    const suffix = L - len;
    for (let i = suffix - 1; i >= 0; i--) {
      let j = 0;
      while (j < len && tokens[i + j] === tokens[suffix + j]) j++;
      if (j === len) return tokens.slice(i + len, Math.min(i + len + k, L));
    }
  }
  return [];
}

/**
 * What a token mask needs of an automaton: a byte-at-a-time step over the UTF-8 of
 * the output. Token texts are byte strings (a byte-fallback token may be half a
 * character), so every constraint is walked at byte level.
 */
export interface ByteMachine<S> {
  readonly initial: S;
  /** The state after one more byte, or null when the byte is not allowed. */
  step(s: S, byte: number): S | null;
  /** Whether the output may end here. */
  accepting(s: S): boolean;
  /** Equal keys => equal futures; masks are cached by key. */
  key(s: S): string | number;
}

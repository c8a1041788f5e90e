/**
 * A CharDfa stepped one UTF-8 byte at a time. A state is one number: the DFA state
 * times 2^25 plus the character in progress (its length, bytes still to come and
 * code-point bits so far), so states are cheap to copy and to use as cache keys.
 * A partial character survives only while some code point it could still become has
 * a transition, so a lead byte can never strand the output.
 */
import { dfaHasRange, dfaStep, type CharDfa } from "./char-dfa.js";
import type { ByteMachine } from "./machine.js";

const K = 1 << 25; // partial-character field: len << 23 | need << 21 | cp
/** A state is dfaState * STATE_SCALE + the character in progress (0 = none). */
export const STATE_SCALE = K;
const MIN_CP = [0, 0, 0x80, 0x800, 0x10000]; // by UTF-8 length, to refuse overlong forms

export class DfaMachine implements ByteMachine<number> {
  readonly initial: number;

  constructor(readonly dfa: CharDfa) {
    this.initial = dfa.start * K;
  }

  step(s: number, b: number): number | null {
    const q = Math.floor(s / K);
    const p = s - q * K;
    const d = this.dfa;
    if (p === 0) {
      if (b < 0x80) {
        const t = d.ascii[q * 128 + b];
        return t < 0 ? null : t * K;
      }
      let len: number;
      let cp: number;
      if (b >= 0xc2 && b <= 0xdf) (len = 2), (cp = b & 0x1f);
      else if (b >= 0xe0 && b <= 0xef) (len = 3), (cp = b & 0x0f);
      else if (b >= 0xf0 && b <= 0xf4) (len = 4), (cp = b & 0x07);
      else return null; // continuation byte or invalid lead
      return this.partial(q, len, len - 1, cp);
    }
    if ((b & 0xc0) !== 0x80) return null;
    const len = p >> 23;
    const need = ((p >> 21) & 3) - 1;
    const cp = ((p & 0x1fffff) << 6) | (b & 0x3f);
    if (need > 0) return this.partial(q, len, need, cp);
    if (cp < MIN_CP[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    const t = dfaStep(d, q, cp);
    return t < 0 ? null : t * K;
  }

  /** A character with `need` continuation bytes to come, or null if none of its completions is allowed. */
  private partial(q: number, len: number, need: number, cp: number): number | null {
    const shift = 6 * need;
    const from = Math.max(cp * 2 ** shift, MIN_CP[len]);
    const to = Math.min((cp + 1) * 2 ** shift - 1, 0x10ffff);
    if (from > to || !dfaHasRange(this.dfa, q, from, to)) return null;
    return q * K + ((len << 23) | (need << 21) | cp);
  }

  accepting(s: number): boolean {
    return s % K === 0 && this.dfa.accepting[s / K] === 1;
  }

  key(s: number): number {
    return s;
  }
}

/**
 * Any JSON value (or any object / array), byte by byte, nested without limit: a
 * pushdown automaton, since nesting is not regular. Used for `json_object` and for
 * schemas that allow any value at the top. Same layout as the schema regexes:
 * compact, with at most one optional space after `,` and `:`.
 *
 * States are immutable; a byte that changes nothing (most string and digit bytes)
 * returns the same object, so a mask walk allocates little.
 */
import type { ByteMachine } from "./machine.js";

const enum M {
  Value, // a value starts here
  Key, // an object key (or `}` right after `{`)
  Colon,
  After, // a value ended: `,`, a closer, or the end
  Str,
  Esc,
  Hex,
  Utf, // inside a multi-byte character
  Minus,
  Zero,
  Int,
  Dot,
  Frac,
  Exp,
  ExpSign,
  ExpDigits,
  Lit,
  End,
}

// aux bits: Value/Key: OPEN = closer allowed (just opened), SPACE = a space may come, ROOT_ONLY = top-level kind
const OPEN = 1;
const SPACE = 2;
const LITERALS = ["true", "false", "null"];

export interface JsonState {
  readonly stack: string; // "o" object, "a" array, innermost last
  readonly mode: M;
  readonly aux: number; // per mode: flags above, or key flag | counters (strings), literal index * 8 + position
}

export type JsonRoot = "object" | "array" | "any";

const st = (stack: string, mode: M, aux = 0): JsonState => ({ stack, mode, aux });
const isNumAccept = (m: M) => m === M.Zero || m === M.Int || m === M.Frac || m === M.ExpDigits;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;

export class JsonMachine implements ByteMachine<JsonState> {
  readonly initial: JsonState;

  constructor(readonly root: JsonRoot = "object") {
    this.initial = st("", M.Value, 0);
  }

  accepting(s: JsonState): boolean {
    return s.mode === M.End || (s.stack === "" && isNumAccept(s.mode));
  }

  key(s: JsonState): string {
    return `${s.stack}|${s.mode}|${s.aux}`;
  }

  step(s: JsonState, b: number): JsonState | null {
    const { stack, aux } = s;
    switch (s.mode) {
      case M.Value:
        if (b === 0x20) return aux & SPACE ? st(stack, M.Value, aux & OPEN) : null;
        if (b === 0x5d && aux & OPEN) return this.close(stack); // `[]`
        return this.startValue(stack, b);
      case M.Key:
        if (b === 0x20) return aux & SPACE ? st(stack, M.Key, 0) : null;
        if (b === 0x7d && aux & OPEN) return this.close(stack); // `{}`
        return b === 0x22 ? st(stack, M.Str, 1) : null;
      case M.Colon:
        return b === 0x3a ? st(stack, M.Value, SPACE) : null;
      case M.After:
        return this.after(stack, b);
      case M.Str:
        if (b === 0x22) return aux & 1 ? st(stack, M.Colon) : this.valueDone(stack);
        if (b === 0x5c) return st(stack, M.Esc, aux);
        if (b < 0x20) return null;
        if (b < 0x80) return s;
        return utfLead(b, stack, aux);
      case M.Esc:
        if (b === 0x75) return st(stack, M.Hex, (aux & 1) | (4 << 1)); // \uXXXX
        return '"\\/bfnrt'.includes(String.fromCharCode(b)) ? st(stack, M.Str, aux & 1) : null;
      case M.Hex: {
        const isHex = isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
        if (!isHex) return null;
        const left = (aux >> 1) - 1;
        return left === 0 ? st(stack, M.Str, aux & 1) : st(stack, M.Hex, (aux & 1) | (left << 1));
      }
      case M.Utf: {
        if ((b & 0xc0) !== 0x80) return null;
        const left = (aux >> 1) - 1;
        return left === 0 ? st(stack, M.Str, aux & 1) : st(stack, M.Utf, (aux & 1) | (left << 1));
      }
      case M.Minus:
        return b === 0x30 ? st(stack, M.Zero) : isDigit(b) ? st(stack, M.Int) : null;
      case M.Zero:
      case M.Int:
        if (isDigit(b) && s.mode === M.Int) return s;
        if (b === 0x2e) return st(stack, M.Dot);
        if (b === 0x65 || b === 0x45) return st(stack, M.Exp);
        return this.endNumber(stack, b);
      case M.Dot:
        return isDigit(b) ? st(stack, M.Frac) : null;
      case M.Frac:
        if (isDigit(b)) return s;
        if (b === 0x65 || b === 0x45) return st(stack, M.Exp);
        return this.endNumber(stack, b);
      case M.Exp:
        return b === 0x2b || b === 0x2d ? st(stack, M.ExpSign) : isDigit(b) ? st(stack, M.ExpDigits) : null;
      case M.ExpSign:
        return isDigit(b) ? st(stack, M.ExpDigits) : null;
      case M.ExpDigits:
        return isDigit(b) ? s : this.endNumber(stack, b);
      case M.Lit: {
        const word = LITERALS[aux >> 3];
        const pos = aux & 7;
        if (b !== word.charCodeAt(pos)) return null;
        return pos + 1 === word.length ? this.valueDone(stack) : st(stack, M.Lit, aux + 1);
      }
      case M.End:
        return null;
    }
  }

  private startValue(stack: string, b: number): JsonState | null {
    if (stack === "" && this.root !== "any") {
      if (b === (this.root === "object" ? 0x7b : 0x5b)) return b === 0x7b ? st("o", M.Key, OPEN) : st("a", M.Value, OPEN);
      return null;
    }
    if (b === 0x7b) return st(stack + "o", M.Key, OPEN);
    if (b === 0x5b) return st(stack + "a", M.Value, OPEN);
    if (b === 0x22) return st(stack, M.Str, 0);
    if (b === 0x2d) return st(stack, M.Minus);
    if (b === 0x30) return st(stack, M.Zero);
    if (isDigit(b)) return st(stack, M.Int);
    const lit = LITERALS.findIndex((w) => w.charCodeAt(0) === b);
    return lit < 0 ? null : st(stack, M.Lit, lit * 8 + 1);
  }

  /** A value just ended (its last byte consumed). */
  private valueDone(stack: string): JsonState {
    return st(stack, stack === "" ? M.End : M.After);
  }

  /** A number ended because byte b cannot extend it: b belongs to what follows. */
  private endNumber(stack: string, b: number): JsonState | null {
    return stack === "" ? null : this.after(stack, b);
  }

  private after(stack: string, b: number): JsonState | null {
    const top = stack.charCodeAt(stack.length - 1);
    if (b === 0x2c) return top === 0x6f ? st(stack, M.Key, SPACE) : st(stack, M.Value, SPACE);
    if (b === 0x7d && top === 0x6f) return this.close(stack);
    if (b === 0x5d && top === 0x61) return this.close(stack);
    return null;
  }

  private close(stack: string): JsonState {
    return this.valueDone(stack.slice(0, -1));
  }
}

/** A string byte >= 0x80: the lead of a 2-4 byte UTF-8 character. */
function utfLead(b: number, stack: string, aux: number): JsonState | null {
  const need = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
  return need === 0 ? null : st(stack, M.Utf, (aux & 1) | (need << 1));
}

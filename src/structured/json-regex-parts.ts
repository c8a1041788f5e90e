/**
 * Regex pieces for JSON text: strings, numbers, integer and number ranges, literals.
 * Every regex here is JS syntax valid under the `u` flag and matches only JSON that
 * JSON.parse accepts. Lengths are capped (16 integer digits, 16 fraction digits,
 * 2 exponent digits) so numbers stay exact-ish doubles and a sampler cannot run on
 * forever inside one number.
 */

/** One JSON string character: anything but `"`, `\` and controls, or an escape (no lone surrogates). */
export const STRING_CHAR = String.raw`(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))`;
/** The characters a `pattern` may use unescaped inside a JSON string. */
export const PLAIN_STRING_CHARS = String.raw`[^"\\\x00-\x1f]`;
export const JSON_STRING = `"${STRING_CHAR}*"`;
export const BOOLEAN = "(?:true|false)";
export const NULL = "null";
const MAX_INT_DIGITS = 16;
const FRACTION = String.raw`(?:\.[0-9]+)?`;
const EXPONENT = "(?:[eE][+-]?[0-9]{1,2})?";
const NAT = "(?:0|[1-9][0-9]*)";
export const INTEGER = `-?${NAT}`;
export const NUMBER = `-?${NAT}${FRACTION}${EXPONENT}`;

/** Separators: compact JSON, with at most one optional space after `,` and `:`. */
export const COMMA = ", ?";
export const COLON = ": ?";

const SYNTAX = /[\\^$.*+?()[\]{}|/]/g;

/** A literal string as a regex (u-flag safe: only syntax characters are escaped). */
export function escapeRegex(s: string): string {
  return s.replace(SYNTAX, "\\$&");
}

/** A JSON value written out as compact JSON, as a regex. */
export function jsonLiteral(v: unknown): string {
  return escapeRegex(JSON.stringify(v));
}

export const alt = (parts: readonly string[]): string => (parts.length === 1 ? parts[0] : `(?:${parts.join("|")})`);

/** Decimal integers in [lo, hi] (hi null = unbounded), lo >= 0, no leading zeros. */
function natRange(lo: number, hi: number | null): string {
  const parts: string[] = [];
  const loLen = String(lo).length;
  const hiLen = hi === null ? MAX_INT_DIGITS : String(hi).length;
  for (let len = loLen; len <= hiLen; len++) {
    const a = len === loLen ? lo : 10 ** (len - 1);
    const b = hi !== null && len === hiLen ? hi : 10 ** len - 1;
    if (hi === null && len > loLen) {
      parts.push(`[1-9][0-9]{${len - 1},${MAX_INT_DIGITS - 1}}`); // every longer length at once
      break;
    }
    if (a <= b) parts.push(sameLength(String(a), String(b)));
  }
  if (parts.length === 0) throw new RangeError(`empty integer range [${lo}, ${hi}]`);
  return alt(parts);
}

/** Digit strings of equal length from a to b (a <= b), e.g. "15".."42" -> 1[5-9]|[23][0-9]|4[0-2]. */
function sameLength(a: string, b: string): string {
  if (a === b) return a;
  const n = a.length;
  if (n === 1) return `[${a}-${b}]`;
  if (a[0] === b[0]) return a[0] + sameLength(a.slice(1), b.slice(1));
  const restA = a.slice(1);
  const restB = b.slice(1);
  const zeros = /^0*$/.test(restA);
  const nines = /^9*$/.test(restB);
  const digits = (x: number, y: number) => (x === y ? String(x) : `[${x}-${y}]`);
  const lowHead = zeros ? +a[0] : +a[0] + 1;
  const highHead = nines ? +b[0] : +b[0] - 1;
  const parts: string[] = [];
  if (!zeros) parts.push(a[0] + sameLength(restA, "9".repeat(n - 1)));
  if (lowHead <= highHead) parts.push(`${digits(lowHead, highHead)}[0-9]{${n - 1}}`);
  if (!nines) parts.push(b[0] + sameLength("0".repeat(n - 1), restB));
  return alt(parts);
}

const LIMIT = 10 ** 15;

/** Integers in [lo, hi]; null = unbounded on that side. Throws RangeError when empty or out of reach. */
export function integerRange(lo: number | null, hi: number | null): string {
  if ((lo !== null && Math.abs(lo) >= LIMIT) || (hi !== null && Math.abs(hi) >= LIMIT)) throw new RangeError(`integer bounds must be below ${LIMIT} in magnitude`);
  if (lo !== null && hi !== null && lo > hi) throw new RangeError(`empty integer range [${lo}, ${hi}]`);
  const parts: string[] = [];
  if (lo === null || lo < 0) {
    // negatives: -m for m in [max(1, -hi), -lo]
    const mLo = hi === null || hi >= 0 ? 1 : -hi;
    parts.push(`-${natRange(mLo, lo === null ? null : -lo)}`);
  }
  if (hi === null || hi >= 0) parts.push(natRange(Math.max(0, lo ?? 0), hi));
  return alt(parts);
}

export interface NumberBounds {
  lo: number | null;
  hi: number | null;
  loExclusive: boolean;
  hiExclusive: boolean;
}

/**
 * Decimal numbers (no exponent) within bounds. Bounds that are not integers are moved
 * inward to the nearest integer, which keeps every output valid; throws RangeError when
 * that leaves nothing.
 */
export function numberRange(b: NumberBounds): string {
  let { lo, hi, loExclusive: loEx, hiExclusive: hiEx } = b;
  if (lo !== null && !Number.isInteger(lo)) (lo = Math.ceil(lo)), (loEx = false);
  if (hi !== null && !Number.isInteger(hi)) (hi = Math.floor(hi)), (hiEx = false);
  if (lo !== null && hi !== null && (lo > hi || (lo === hi && (loEx || hiEx)))) throw new RangeError("no number with integer bounds fits this range");
  const parts: string[] = [];
  if (hi === null || hi > 0 || (hi === 0 && !hiEx)) {
    const a = lo === null || lo < 0 ? 0 : lo;
    parts.push(nonNegReal(a, lo === null || lo < 0 ? false : loEx, hi, hiEx));
  }
  if (lo === null || lo < 0) {
    // negatives: -y with y in (max(0, -hi), -lo], mirrored bounds
    const yLo = hi === null || hi >= 0 ? 0 : -hi;
    const yLoEx = hi === null || hi >= 0 ? true : hiEx;
    parts.push(`-${nonNegReal(yLo, yLoEx, lo === null ? null : -lo, loEx)}`);
  }
  return alt(parts);
}

/** Non-negative decimals between integers a and b (b null = unbounded). */
function nonNegReal(a: number, aEx: boolean, b: number | null, bEx: boolean): string {
  const zeroFrac = String.raw`(?:\.0{1,16})?`;
  const nonZeroFrac = String.raw`\.[0-9]{0,15}[1-9]`;
  if (b !== null && a === b) return `${a}${zeroFrac}`;
  const parts: string[] = [aEx ? `${a}${nonZeroFrac}` : `${a}${FRACTION}`];
  if (b === null || b - 1 >= a + 1) parts.push(`${natRange(a + 1, b === null ? null : b - 1)}${FRACTION}`);
  if (b !== null && !bEx) parts.push(`${b}${zeroFrac}`);
  return alt(parts);
}

/**
 * Reads one `{"name": ..., "arguments": {...}}` object as it streams in: tracks JSON
 * nesting and strings just enough to find the top-level name and the raw text of the
 * arguments ("parameters" in Llama 3's format), so arguments can be streamed before
 * the object closes. It never re-reads a character.
 */
const ARG_KEYS = new Set(["arguments", "parameters"]);

const isWs = (c: string) => c === " " || c === "\n" || c === "\r" || c === "\t";

export class CallScanner {
  /** Index just past the closing `}`, once closed. */
  end = -1;
  name: string | null = null;
  private pos: number;
  private depth = 0;
  private inStr = false;
  private esc = false;
  private strStart = -1;
  private strIsKey = false;
  /** Top level: expecting a key (after `{` or `,`), else a value (after `:`). */
  private expectKey = true;
  private key: string | null = null;
  /** Start of the current top-level value, -1 before it begins. */
  private valueStart = -1;
  private valueIsPrimitive = false;
  private lastNonWs = -1;
  private argsStart = -1;
  private argsEnd = -1;
  private argsIsString = false;

  constructor(
    private readonly buf: { text: string },
    readonly start: number,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.end >= 0;
  }

  /** Scans what arrived since the last call. */
  scan(): void {
    const s = this.buf.text;
    for (; this.pos < s.length && this.end < 0; this.pos++) this.char(s, this.pos);
  }

  /**
   * The arguments text known so far: a prefix of the final one (trailing whitespace
   * held back). A string-valued arguments field is decoded once complete.
   */
  argumentsSoFar(): string {
    if (this.argsStart < 0) return this.done ? "{}" : "";
    if (this.argsIsString) return this.argsEnd >= 0 ? decodeString(this.buf.text.slice(this.argsStart, this.argsEnd)) : "";
    const end = this.argsEnd >= 0 ? this.argsEnd : this.lastNonWs + 1;
    return end > this.argsStart ? this.buf.text.slice(this.argsStart, end) : "";
  }

  private char(s: string, i: number): void {
    const c = s[i];
    if (!isWs(c)) this.lastNonWs = i;
    if (this.inStr) {
      if (this.esc) this.esc = false;
      else if (c === "\\") this.esc = true;
      else if (c === '"') this.stringEnd(s, i);
      return;
    }
    if (c === '"') {
      this.inStr = true;
      this.strStart = i;
      this.strIsKey = this.depth === 1 && this.expectKey;
      if (!this.strIsKey) this.valueBegins(i, false);
      return;
    }
    if (c === "{" || c === "[") {
      if (this.depth >= 1) this.valueBegins(i, false);
      this.depth++;
      return;
    }
    if (c === "}" || c === "]") {
      if (this.depth === 1) this.primitiveEnds();
      this.depth--;
      if (this.depth === 1 && this.key !== null && ARG_KEYS.has(this.key) && this.argsEnd < 0 && !this.argsIsString) this.argsEnd = i + 1;
      if (this.depth === 0) this.end = i + 1;
      return;
    }
    if (this.depth !== 1) return;
    if (c === ":") {
      this.expectKey = false;
      this.valueStart = -1;
    } else if (c === ",") {
      this.primitiveEnds();
      this.expectKey = true;
      this.key = null;
      this.valueStart = -1;
    } else if (!isWs(c)) {
      this.valueBegins(i, true); // a number or literal
    }
  }

  private valueBegins(i: number, primitive: boolean): void {
    if (this.depth > 1 || (this.depth === 1 && this.expectKey) || this.valueStart >= 0) return;
    this.valueStart = i;
    this.valueIsPrimitive = primitive;
    if (this.key !== null && ARG_KEYS.has(this.key) && this.argsStart < 0) {
      this.argsStart = i;
      this.argsIsString = this.buf.text[i] === '"';
    }
  }

  private primitiveEnds(): void {
    if (this.valueStart >= 0 && this.valueIsPrimitive && this.key !== null && ARG_KEYS.has(this.key) && this.argsEnd < 0) {
      this.argsEnd = this.trimmedEnd();
    }
  }

  /** End of the primitive value: just past its last non-space character before pos. */
  private trimmedEnd(): number {
    let e = this.pos;
    while (e > this.valueStart && isWs(this.buf.text[e - 1])) e--;
    return e;
  }

  private stringEnd(s: string, i: number): void {
    this.inStr = false;
    if (this.depth !== 1) return;
    const raw = s.slice(this.strStart, i + 1);
    if (this.strIsKey) {
      this.key = decodeString(raw);
    } else if (this.key === "name" && this.valueStart === this.strStart && this.name === null) {
      this.name = decodeString(raw);
    } else if (this.key !== null && ARG_KEYS.has(this.key) && this.argsStart === this.strStart) {
      this.argsEnd = i + 1;
    }
  }
}

function decodeString(raw: string): string {
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === "string" ? v : raw;
  } catch {
    return raw.slice(1, -1);
  }
}

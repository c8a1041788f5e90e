/**
 * A JSON Schema `pattern` inside a JSON string. The pattern speaks of the decoded
 * string, the constraint of the JSON text, so the pattern's language is intersected
 * with the characters that need no escaping (refa does the intersection) and the
 * result is written back as a regex. Schema patterns search (unanchored), so a side
 * without its ^ / $ gets "any plain characters" there.
 */
import { DFA, JS } from "refa";
import { SchemaError } from "./json-schema-regex.js";
import { PLAIN_STRING_CHARS } from "./json-regex-parts.js";
import { dfaOfRegex, RegexCompileError } from "./char-dfa.js";

export function embedPattern(pattern: string, path: string): string {
  const { body, start, end } = stripAnchors(pattern);
  const source = `${start ? "" : `${PLAIN_STRING_CHARS}*`}(?:${body})${end ? "" : `${PLAIN_STRING_CHARS}*`}`;
  try {
    const dfa = dfaOfRegex(source);
    const plain = dfaOfRegex(`${PLAIN_STRING_CHARS}*`);
    const both = DFA.fromIntersection(dfa, plain);
    both.minimize();
    if (both.isEmpty) throw new SchemaError(path, `no string without escapes matches the pattern /${pattern}/`);
    return `(?:${JS.toLiteral(both.toRegex(), { flags: { unicode: true } }).source})`;
  } catch (e) {
    if (e instanceof RegexCompileError) throw new SchemaError(path, e.message);
    throw e;
  }
}

/** Splits a leading ^ and a trailing unescaped $ off a pattern. */
export function stripAnchors(pattern: string): { body: string; start: boolean; end: boolean } {
  let body = pattern;
  const start = body.startsWith("^");
  if (start) body = body.slice(1);
  let end = false;
  if (body.endsWith("$")) {
    let slashes = 0;
    for (let i = body.length - 2; i >= 0 && body[i] === "\\"; i--) slashes++;
    if (slashes % 2 === 0) {
      end = true;
      body = body.slice(0, -1);
    }
  }
  return { body, start, end };
}

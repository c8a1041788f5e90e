/**
 * The automata under the masks: integer/number range regexes against brute force,
 * the JSON pushdown machine against JSON.parse, and UTF-8 handling of the byte-level
 * DFA (half characters, overlong forms).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/runtime/rng.js";
import { regexToDfa } from "../../src/structured/char-dfa.js";
import { DfaMachine } from "../../src/structured/dfa-machine.js";
import { JsonMachine } from "../../src/structured/json-machine.js";
import { integerRange, numberRange } from "../../src/structured/json-regex-parts.js";
import type { ByteMachine } from "../../src/structured/machine.js";

function accepts<S>(m: ByteMachine<S>, text: string | Uint8Array): boolean {
  let s: S | null = m.initial;
  for (const b of typeof text === "string" ? Buffer.from(text, "utf8") : text) {
    s = m.step(s, b);
    if (s === null) return false;
  }
  return m.accepting(s);
}

test("integer ranges match exactly the integers in range, with no leading zeros", () => {
  const rng = new Rng(1);
  for (let i = 0; i < 300; i++) {
    const a = Math.floor(rng.nextFloat() * 2400) - 1200;
    const lo = rng.nextFloat() < 0.2 ? null : a;
    const hi = rng.nextFloat() < 0.2 ? null : a + Math.floor(rng.nextFloat() * 900);
    const re = new RegExp(`^(?:${integerRange(lo, hi)})$`, "u");
    for (let x = -1500; x <= 1500; x += 1 + Math.floor(rng.nextFloat() * 3)) {
      assert.equal(re.test(String(x)), (lo === null || x >= lo) && (hi === null || x <= hi), `${x} in [${lo}, ${hi}]`);
    }
    assert.ok(!re.test("007") && !re.test("-0") && !re.test("+1"));
  }
});

test("number ranges: decimals inside the bounds (exclusive ones too) match, others do not", () => {
  const rng = new Rng(2);
  for (let i = 0; i < 300; i++) {
    const a = Math.floor(rng.nextFloat() * 40) - 20;
    const b = { lo: rng.nextFloat() < 0.2 ? null : a, hi: rng.nextFloat() < 0.2 ? null : a + Math.floor(rng.nextFloat() * 20), loExclusive: rng.nextFloat() < 0.5, hiExclusive: rng.nextFloat() < 0.5 };
    if (b.lo === null && b.hi === null) continue;
    let src: string;
    try {
      src = numberRange(b);
    } catch {
      assert.ok(b.lo !== null && b.hi !== null && b.lo === b.hi, "only a degenerate range is refused");
      continue;
    }
    const re = new RegExp(`^(?:${src})$`, "u");
    for (let k = 0; k < 200; k++) {
      const x = Math.round((rng.nextFloat() * 60 - 30) * 8) / 8;
      const ok = (b.lo === null || (b.loExclusive ? x > b.lo : x >= b.lo)) && (b.hi === null || (b.hiExclusive ? x < b.hi : x <= b.hi));
      assert.equal(re.test(String(x)), ok, `${x} vs ${JSON.stringify(b)}`);
    }
  }
});

function randomJson(rng: Rng, depth: number): unknown {
  const r = rng.nextFloat();
  if (depth > 0 && r < 0.25) return Object.fromEntries(Array.from({ length: Math.floor(rng.nextFloat() * 4) }, (_, i) => [`k${i}\u00e9"\\`, randomJson(rng, depth - 1)]));
  if (depth > 0 && r < 0.45) return Array.from({ length: Math.floor(rng.nextFloat() * 4) }, () => randomJson(rng, depth - 1));
  if (r < 0.6) return Math.round((rng.nextFloat() - 0.5) * 1e6) / (rng.nextFloat() < 0.5 ? 1 : 1000);
  if (r < 0.8) return "s\n\u0001\u{1F600}x".slice(0, Math.floor(rng.nextFloat() * 8));
  return [true, false, null][Math.floor(rng.nextFloat() * 3)];
}

/** JSON with a space after every `,` and `:` between tokens. */
function spacedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(spacedJson).join(", ")}]`;
  if (typeof v === "object" && v !== null) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${spacedJson(x)}`).join(", ")}}`;
  return JSON.stringify(v);
}

test("JSON machine: accepts compact JSON (one optional space after , and :), and whatever it accepts parses", () => {
  const rng = new Rng(3);
  const obj = new JsonMachine("object");
  const any = new JsonMachine("any");
  for (let i = 0; i < 300; i++) {
    const v = { v: randomJson(rng, 4) };
    const compact = JSON.stringify(v);
    assert.ok(accepts(obj, compact), compact);
    assert.ok(accepts(obj, spacedJson(v)), spacedJson(v));
    // mutations: whatever is still accepted must parse
    for (let k = 0; k < 10; k++) {
      const at = Math.floor(rng.nextFloat() * compact.length);
      const mutated = compact.slice(0, at) + '{}[],:"0e.-ntfl \\'[Math.floor(rng.nextFloat() * 18)] + compact.slice(at + (rng.nextFloat() < 0.5 ? 1 : 0));
      if (accepts(any, mutated)) assert.doesNotThrow(() => JSON.parse(mutated), mutated);
    }
  }
  assert.ok(!accepts(obj, "[1]") && accepts(new JsonMachine("array"), "[1]") && accepts(any, "-0.5e+3"));
  assert.ok(!accepts(obj, "{ }") && !accepts(obj, '{"a":  1}') && !accepts(obj, '{"a":1,}'));
});

test("byte-level DFA: multi-byte characters may be split across tokens; invalid UTF-8 is refused", () => {
  const m = new DfaMachine(regexToDfa("(é|日本)+"));
  assert.ok(accepts(m, "éé日本é"));
  const e = Buffer.from("é"); // c3 a9
  let s = m.step(m.initial, e[0]);
  assert.ok(s !== null && !m.accepting(s), "half a character is alive but not a match");
  s = m.step(s, e[1]);
  assert.ok(s !== null && m.accepting(s));
  assert.equal(m.step(m.initial, 0xc3 + 1), null, "a lead byte no allowed character starts with");
  assert.equal(m.step(m.initial, 0xa9), null, "a lone continuation byte");
  assert.ok(!accepts(m, Uint8Array.of(0xc1, 0xa9)), "overlong form");
  assert.ok(!accepts(m, "e"));
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { StopChecker, isStopToken } from "../../src/runtime/stop.js";
import { normalizeSamplingParams } from "../../src/runtime/sampling-params.js";
import { Rng } from "../../src/runtime/rng.js";

/** Feeds the deltas; returns what was emitted per delta, the final flush (if no stop) and the stop. */
function run(stops: string[], deltas: string[]) {
  const c = new StopChecker(stops);
  const out: string[] = [];
  let stop: string | undefined;
  for (const d of deltas) {
    const r = c.push(d);
    out.push(r.text);
    if (r.stopped) {
      stop = r.stop;
      break;
    }
  }
  const tail = stop === undefined ? c.flush() : "";
  return { out, text: out.join("") + tail, stop };
}

test("no stop strings: text passes straight through", () => {
  assert.deepEqual(run([], ["a", "bc", ""]), { out: ["a", "bc", ""], text: "abc", stop: undefined });
});

test("no match: a possible stop prefix is held back, then released", () => {
  const r = run(["###"], ["Hello #", "#", " world"]);
  assert.deepEqual(r.out, ["Hello ", "", "## world"]);
  assert.equal(r.text, "Hello ## world");
  assert.equal(r.stop, undefined);
  // held text at the end of generation comes back from flush()
  const c = new StopChecker(["###"]);
  assert.equal(c.push("end ##").text, "end ");
  assert.equal(c.flush(), "##");
  assert.equal(c.flush(), "");
});

test("a stop string split across deltas is never partly shown", () => {
  const r = run(["</s>"], ["abc<", "/", "s", ">tail"]);
  assert.deepEqual(r.out, ["abc", "", "", ""]);
  assert.equal(r.stop, "</s>");
  assert.equal(r.text, "abc");
});

test("stop at the very start, and text after the stop is dropped", () => {
  assert.deepEqual(run(["STOP"], ["STOP and more"]), { out: [""], text: "", stop: "STOP" });
  assert.deepEqual(run(["x"], ["x"]), { out: [""], text: "", stop: "x" });
  assert.deepEqual(run(["end"], ["the end", " is here"]), { out: ["the "], text: "the ", stop: "end" });
});

test("overlapping candidates: the first to complete wins, whatever the chunking", () => {
  // "bc" completes before "abcd" could
  assert.deepEqual(run(["abcd", "bc"], ["abcd"]), { out: ["a"], text: "a", stop: "bc" });
  assert.deepEqual(run(["abcd", "bc"], ["a", "b", "c", "d"]), { out: ["", "", "a"], text: "a", stop: "bc" });
  // completing together: the longer (earlier-starting) one wins
  assert.equal(run(["bc", "abc"], ["xabc"]).text, "x");
  assert.equal(run(["bc", "abc"], ["xabc"]).stop, "abc");
  // self-overlapping stop: "aab" inside "aaab"
  assert.deepEqual(run(["aab"], ["a", "a", "a", "b"]), { out: ["", "", "a", ""], text: "a", stop: "aab" });
  // a held prefix that turns out not to match is released in order
  assert.deepEqual(run(["abc", "abd"], ["ab", "x"]), { out: ["", "abx"], text: "abx", stop: undefined });
});

test("after a stop further deltas are ignored", () => {
  const c = new StopChecker(["!"]);
  assert.deepEqual(c.push("hi!"), { text: "hi", stopped: true, stop: "!" });
  assert.equal(c.stopped, true);
  assert.deepEqual(c.push("more"), { text: "", stopped: true });
  assert.equal(c.flush(), "");
});

test("random text and chunkings agree with a whole-text reference", () => {
  const r = new Rng(2024);
  const pick = (s: string) => s[r.nextU32() % s.length];
  for (let trial = 0; trial < 300; trial++) {
    const text = Array.from({ length: 1 + (r.nextU32() % 30) }, () => pick("abc")).join("");
    const stops = Array.from({ length: 1 + (r.nextU32() % 3) }, () => Array.from({ length: 1 + (r.nextU32() % 4) }, () => pick("abc")).join(""));
    // reference: the occurrence that ends first (then starts first)
    let ref: { start: number; end: number; stop: string } | undefined;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (!ref || i + s.length < ref.end || (i + s.length === ref.end && i < ref.start))) ref = { start: i, end: i + s.length, stop: s };
    }
    const deltas: string[] = [];
    for (let i = 0; i < text.length; ) {
      const n = r.nextU32() % 4; // includes empty deltas
      deltas.push(text.slice(i, i + n));
      i += n;
    }
    const got = run(stops, deltas);
    const ctx = JSON.stringify({ text, stops, deltas });
    assert.equal(got.text, ref ? text.slice(0, ref.start) : text, ctx);
    assert.equal(got.stop, ref?.stop, ctx);
    // the stream never shows anything it later takes back: every emitted prefix is a prefix of the final text
    assert.ok(got.text.startsWith(got.out.join("")), ctx);
  }
});

test("isStopToken: stop ids always, EOS unless ignoreEos", () => {
  const p = normalizeSamplingParams({ stopTokenIds: [7] });
  assert.equal(isStopToken(7, p, [2]), true);
  assert.equal(isStopToken(2, p, [2]), true);
  assert.equal(isStopToken(2, p, new Set([2, 3])), true);
  assert.equal(isStopToken(5, p, [2]), false);
  const q = normalizeSamplingParams({ stopTokenIds: [7], ignoreEos: true });
  assert.equal(isStopToken(2, q, [2]), false);
  assert.equal(isStopToken(7, q, [2]), true);
});

/**
 * Tool-call parsing for the Hermes, Llama 3 JSON and Mistral formats: hand-written
 * outputs parse to the expected calls, and streaming them in random chunkings gives
 * deltas that fold into exactly the non-streamed parse.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/runtime/rng.js";
import { mergeToolDeltas, parseToolCalls, ToolCallStreamParser, type ToolCallFormat, type ToolStreamDelta } from "../../src/tools/index.js";

const ids = { makeId: (i: number) => `call_${i}` };
const call = (name: string, args: string, i = 0) => ({ id: `call_${i}`, type: "function", function: { name, arguments: args } });

const CASES: { format: ToolCallFormat; text: string; content: string; calls: ReturnType<typeof call>[] }[] = [
  {
    format: "hermes",
    text: 'Let me look that up.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>',
    content: "Let me look that up.",
    calls: [call("get_weather", '{"city": "Paris", "days": [1, 2]}'), call("now", "{}", 1)],
  },
  {
    format: "hermes",
    text: '<tool_call>\n{"arguments": {"q": "a \\"quoted\\" } brace"}, "name": "search"}\n</tool_call>',
    content: "",
    calls: [call("search", '{"q": "a \\"quoted\\" } brace"}')],
  },
  { format: "hermes", text: "No tools needed: 2 < 3 and <tool is not a tag.", content: "No tools needed: 2 < 3 and <tool is not a tag.", calls: [] },
  { format: "hermes", text: '<tool_call>\n{"nome": 1}\n</tool_call> after', content: '<tool_call>\n{"nome": 1} after', calls: [] },
  { format: "hermes", text: 'Look: <tool_call>{"nome": 1}</tool_call>', content: 'Look: <tool_call>{"nome": 1}', calls: [] },
  {
    format: "hermes",
    text: '<tool_call>\n{"name": "cut", "arguments": {"text": "unfinished',
    content: "",
    calls: [call("cut", '{"text": "unfinished')],
  },
  {
    format: "llama3_json",
    text: '{"name": "get_time", "parameters": {"tz": "UTC", "nested": {"a": [1, {"b": "}"}]}}}',
    content: "",
    calls: [call("get_time", '{"tz": "UTC", "nested": {"a": [1, {"b": "}"}]}}')],
  },
  {
    format: "llama3_json",
    text: '<|python_tag|>{"type": "function", "name": "f", "parameters": {"x": 1}}; {"name": "g", "parameters": {}}',
    content: "",
    calls: [call("f", '{"x": 1}'), call("g", "{}", 1)],
  },
  { format: "llama3_json", text: '  {"answer": 42} is my JSON', content: '{"answer": 42} is my JSON', calls: [] },
  { format: "llama3_json", text: "The time is noon.", content: "The time is noon.", calls: [] },
  {
    format: "mistral",
    text: '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "abc123XYZ"}, {"name": "echo", "arguments": "{\\"s\\": \\"hi\\"}"}]',
    content: "",
    calls: [call("add", '{"a": 1, "b": 2}'), call("echo", '{"s": "hi"}', 1)],
  },
  { format: "mistral", text: '[{"name": "ping", "arguments": {}}]', content: "", calls: [call("ping", "{}")] },
  { format: "mistral", text: "Sure, here: [TOOL_CALLS]oops", content: "Sure, here: [TOOL_CALLS]oops", calls: [] },
  { format: "mistral", text: "[1, 2, 3] are numbers", content: "[1, 2, 3] are numbers", calls: [] },
];

test("hand-written outputs parse into the expected content and tool calls", () => {
  for (const c of CASES) {
    const got = parseToolCalls(c.text, c.format, ids);
    assert.deepEqual(got, { content: c.content, toolCalls: c.calls }, `${c.format}: ${c.text}`);
    for (const tc of got.toolCalls) if (!c.text.includes("unfinished")) JSON.parse(tc.function.arguments);
  }
});

function streamed(format: ToolCallFormat, chunks: string[]): ToolStreamDelta[] {
  const p = new ToolCallStreamParser(format, ids);
  return [...chunks.map((ch) => p.push(ch)), p.finish()];
}

function randomChunks(rng: Rng, text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rng.nextFloat() * (rng.nextFloat() < 0.5 ? 3 : 12));
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

test("streaming in random chunkings folds into the non-streamed parse; each call opens with id, type and name", () => {
  const rng = new Rng(8);
  for (const c of CASES) {
    const whole = parseToolCalls(c.text, c.format, ids);
    const chunkings = [[...c.text], ...Array.from({ length: 40 }, () => randomChunks(rng, c.text))];
    for (const chunks of chunkings) {
      const deltas = streamed(c.format, chunks);
      assert.deepEqual(mergeToolDeltas(deltas), whole, `${c.format}: ${JSON.stringify(chunks)}`);
      const opened = new Set<number>();
      for (const d of deltas) {
        for (const t of d.toolCalls) {
          if (!opened.has(t.index)) {
            assert.ok(t.id && t.type === "function" && t.function.name, `first delta of call ${t.index} names it`);
            assert.equal(t.index, opened.size, "calls open in index order");
            opened.add(t.index);
          } else {
            assert.equal(t.id, undefined);
            assert.equal(t.function.name, undefined);
          }
        }
      }
    }
  }
});

test("arguments stream before the call's object closes", () => {
  const p = new ToolCallStreamParser("hermes", ids);
  const d1 = p.push('<tool_call>\n{"name": "write", "arguments": {"text": "hello');
  assert.deepEqual(d1.toolCalls, [{ index: 0, id: "call_0", type: "function", function: { name: "write", arguments: '{"text": "hello' } }]);
  const d2 = p.push(' world"}}\n</tool_call>');
  assert.deepEqual(d2.toolCalls, [{ index: 0, function: { arguments: ' world"}' } }]);
  assert.deepEqual(p.finish(), { content: "", toolCalls: [] });
});

test("default ids: call_ + 24 characters; Mistral's template wants 9 letters or digits", () => {
  assert.match(parseToolCalls('<tool_call>{"name": "a", "arguments": {}}</tool_call>', "hermes").toolCalls[0].id, /^call_[A-Za-z0-9_-]{24}$/);
  assert.match(parseToolCalls('[TOOL_CALLS] [{"name": "a", "arguments": {}}]', "mistral").toolCalls[0].id, /^[A-Za-z0-9]{9}$/);
});

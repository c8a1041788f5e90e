/**
 * Tool calls through the official openai client on synthetic:tiny served with
 * --tool-call-parser hermes: tool_choice "required" / named returns calls whose
 * arguments validate against the tool's schema (streamed and not), tool history is
 * accepted, and "auto" output is split into content and calls.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { ChoiceToolStream, planTools, wholeToolOutput, type ToolPlan } from "../../src/server/openai/chat-tools.js";
import type { ChatRequest } from "../../src/server/openai/schemas.js";
import type { RunningServer } from "../../src/server/server.js";
import { schemaValidator } from "../../src/structured/index.js";
import { postJson, startTestServer } from "./helpers.js";

let s: RunningServer;
let client: OpenAI;
before(async () => {
  s = await startTestServer({ toolCallParser: "hermes", maxSeqLen: 512 });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 60_000 });
});
after(() => s.close(1000));

const weather = {
  type: "object",
  properties: { city: { type: "string", maxLength: 8 }, days: { type: "integer", minimum: 1, maximum: 7 } },
  required: ["city", "days"],
  additionalProperties: false,
};
const clock = { type: "object", properties: { tz: { enum: ["UTC", "CET"] } }, required: ["tz"], additionalProperties: false };
const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Weather forecast", parameters: weather } },
  { type: "function", function: { name: "get_time", parameters: clock } },
];
const schemaOf = (name: string) => (name === "get_weather" ? weather : clock);
const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: "user", content: "What's the weather in Paris?" }];

function assertValidCall(call: { id?: string; function?: { name?: string; arguments?: string } }, where: string): void {
  assert.ok(call.id && call.id.length > 0, `${where}: has an id`);
  const name = call.function?.name ?? "";
  assert.ok(name === "get_weather" || name === "get_time", `${where}: names a tool (${name})`);
  const args = JSON.parse(call.function?.arguments ?? "");
  const validate = schemaValidator(schemaOf(name));
  assert.ok(validate(args), `${where}: ${call.function?.arguments} ${JSON.stringify(validate.errors)}`);
}

test('tool_choice "required", not streamed: valid calls and finish_reason tool_calls', async () => {
  // parallel_tool_calls: false asks for exactly one call, so a random-weight model stops after it
  for (let seed = 1; seed <= 4; seed++) {
    const r = await client.chat.completions.create({ model: "synthetic:tiny", messages, tools, tool_choice: "required", parallel_tool_calls: false, temperature: 1, seed, max_tokens: 200 });
    const c = r.choices[0];
    assert.equal(c.finish_reason, "tool_calls", JSON.stringify(c));
    assert.equal(c.message.content, null);
    assert.equal(c.message.tool_calls?.length, 1);
    assertValidCall(c.message.tool_calls![0] as any, `seed ${seed}`);
  }
  // parallel calls allowed: every call that completes validates; a run-on list is cut with length
  for (let seed = 1; seed <= 4; seed++) {
    const r = await client.chat.completions.create({ model: "synthetic:tiny", messages, tools, tool_choice: "required", temperature: 1, seed, max_tokens: 150 });
    const c = r.choices[0];
    if (c.finish_reason === "length") continue;
    assert.equal(c.finish_reason, "tool_calls");
    for (const call of c.message.tool_calls!) assertValidCall(call as any, `parallel seed ${seed}`);
  }
});

test("a named function, streamed and not: its arguments validate", async () => {
  const tool_choice = { type: "function" as const, function: { name: "get_weather" } };
  const whole = await client.chat.completions.create({ messages, model: "synthetic:tiny", tools, tool_choice, temperature: 1, seed: 7, max_tokens: 200 });
  const call = whole.choices[0].message.tool_calls![0] as any;
  assert.equal(call.function.name, "get_weather");
  assertValidCall(call, "named");
  assert.equal(whole.choices[0].finish_reason, "tool_calls");

  const stream = await client.chat.completions.create({ messages, model: "synthetic:tiny", tools, tool_choice, temperature: 1, seed: 7, max_tokens: 200, stream: true });
  const merged = await mergeStream(stream);
  assert.equal(merged.finish, "tool_calls");
  assert.equal(merged.calls.length, 1);
  assertValidCall(merged.calls[0], "named stream");
  assert.deepEqual(JSON.parse(merged.calls[0].function.arguments), JSON.parse(call.function.arguments), "the same seed gives the same call streamed or not");
});

test('tool_choice "required", streamed: tool_calls deltas merge to valid calls', async () => {
  const stream = await client.chat.completions.create({ messages, model: "synthetic:tiny", tools, tool_choice: "required", parallel_tool_calls: false, temperature: 1, seed: 3, max_tokens: 200, stream: true });
  const merged = await mergeStream(stream);
  assert.equal(merged.finish, "tool_calls");
  assert.ok(merged.calls.length >= 1);
  merged.calls.forEach((c, i) => assertValidCall(c, `stream call ${i}`));
  assert.equal(merged.content, "");
});

test("tool history (assistant tool_calls, role tool) is accepted; auto and none answer in text", async () => {
  const history: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
    ...messages,
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","days":1}' } }] },
    { role: "tool", tool_call_id: "call_1", content: '{"forecast":"sunny"}' },
  ];
  for (const tool_choice of ["auto", "none"] as const) {
    const r = await client.chat.completions.create({ model: "synthetic:tiny", messages: history, tools, tool_choice, max_tokens: 8, temperature: 0 });
    const c = r.choices[0];
    assert.equal(typeof c.message.content, "string");
    assert.ok(["stop", "length", "tool_calls"].includes(c.finish_reason));
  }
});

test("a cut call is returned as text with finish_reason length", async () => {
  const r = await postJson(`${s.url}/v1/chat/completions`, { messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } }, max_tokens: 3 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.choices[0].finish_reason, "length");
  assert.equal(r.body.choices[0].message.tool_calls?.length ?? 0, 0);
  assert.equal(typeof r.body.choices[0].message.content, "string");
});

test("auto with a hermes parser: calls in the output become tool_calls, whole or streamed in any chunking", () => {
  const plan: ToolPlan = planTools({ messages: [], tools, tool_choice: "auto" } as unknown as ChatRequest, "hermes");
  const text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}\n</tool_call>';
  const whole = wholeToolOutput(plan, text);
  assert.equal(whole.content, "Let me check.");
  assert.equal(whole.toolCalls.length, 1);
  assert.deepEqual(JSON.parse(whole.toolCalls[0].function.arguments), { city: "Oslo", days: 2 });
  for (const size of [1, 3, 7, 1000]) {
    const st = new ChoiceToolStream(plan);
    let content = "";
    const args: string[] = [];
    let name = "";
    const take = (d: { content: string; toolCalls: any[] }) => {
      content += d.content;
      for (const t of d.toolCalls) {
        if (t.function.name) name = t.function.name;
        args[t.index] = (args[t.index] ?? "") + (t.function.arguments ?? "");
      }
    };
    for (let i = 0; i < text.length; i += size) take(st.push(text.slice(i, i + size)));
    take(st.finish());
    assert.ok(st.called);
    assert.equal(content.trim(), "Let me check.");
    assert.equal(name, "get_weather");
    assert.deepEqual(JSON.parse(args[0]), { city: "Oslo", days: 2 });
  }
});

async function mergeStream(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  const calls: { id?: string; function: { name?: string; arguments: string } }[] = [];
  let content = "";
  let finish: string | null = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (!c) continue;
    content += c.delta.content ?? "";
    for (const t of c.delta.tool_calls ?? []) {
      const call = (calls[t.index] ??= { function: { arguments: "" } });
      if (t.id) call.id = t.id;
      if (t.function?.name) call.function.name = t.function.name;
      call.function.arguments += t.function?.arguments ?? "";
    }
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { calls, content, finish };
}

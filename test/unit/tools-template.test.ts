/**
 * Tools around the chat template: the format is read off the template's markers,
 * tools reach the template, a rendered tool call parses back to itself, and
 * tool_choice "required" / a named function force well-formed calls on a
 * random-weight model.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { LLM } from "../../src/api/llm.js";
import { OptionError } from "../../src/errors.js";
import { schemaValidator } from "../../src/structured/index.js";
import { applyChatTemplate } from "../../src/tokenizer/index.js";
import {
  checkToolChoice, checkTools, constrainedToolCalls, detectToolCallFormat, messagesForTemplate,
  parseToolCalls, resolveToolCallFormat, toolChoiceConstraint, type ToolDefinition,
} from "../../src/tools/index.js";
import { fixture } from "../helpers/fixtures.js";

const TOOLS: ToolDefinition[] = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: { type: "object", properties: { city: { type: "string", maxLength: 12 }, unit: { enum: ["c", "f"] } }, required: ["city"] },
    },
  },
  { type: "function", function: { name: "roll", parameters: { type: "object", properties: { sides: { type: "integer", minimum: 2, maximum: 20 } }, required: ["sides"], additionalProperties: false } } },
];

// A Hermes / Qwen 2.5 style template, cut to the tool parts.
const HERMES = `{%- if tools %}<|im_start|>system
<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools><|im_end|>
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

test("the format comes from the template's markers, or an explicit override", (t) => {
  assert.equal(detectToolCallFormat(HERMES), "hermes");
  assert.equal(detectToolCallFormat("{{ '<|start_header_id|>' }}{% if tools %}<|python_tag|>{% endif %}"), "llama3_json");
  assert.equal(detectToolCallFormat("{% for m in messages %}{{ m.content }}{% endfor %}"), null);
  assert.equal(detectToolCallFormat(null), null);
  assert.equal(resolveToolCallFormat(HERMES, "mistral"), "mistral");
  assert.throws(() => resolveToolCallFormat(HERMES, "xml"), OptionError);
  const file = fixture(t, "models/tokenizers/mistral/chat_templates/v3_spm.jinja");
  if (file !== null) assert.equal(detectToolCallFormat(readFileSync(file, "utf8")), "mistral");
});

test("tools reach the template; an assistant tool call renders and parses back to itself (Hermes)", () => {
  const calls = [{ id: "call_0", type: "function", function: { name: "get_weather", arguments: '{"city": "Oslo"}' } }];
  const msgs = messagesForTemplate([{ role: "user", content: "Weather in Oslo?" }, { role: "assistant", content: null, tool_calls: calls }]);
  const text = applyChatTemplate(HERMES, msgs, { tools: TOOLS, addGenerationPrompt: false });
  assert.ok(text.includes('"name": "get_weather"') && text.includes("<tools>"), text);
  const turn = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0];
  const parsed = parseToolCalls(turn, "hermes", { makeId: () => "call_0" });
  assert.deepEqual(parsed.toolCalls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), [["get_weather", { city: "Oslo" }]]);
});

test("Mistral v3 template: tools and a tool call render, and the call parses back", (t) => {
  const file = fixture(t, "models/tokenizers/mistral/chat_templates/v3_spm.jinja");
  if (file === null) return;
  const calls = [
    { id: "abcdefghi", type: "function", function: { name: "roll", arguments: '{"sides": 6}' } },
    { id: "ABCDEFGHI", type: "function", function: { name: "get_weather", arguments: '{"city": "Rome", "unit": "c"}' } },
  ];
  const msgs = [{ role: "user", content: "Roll and check Rome" }, { role: "assistant", content: null, tool_calls: calls }];
  const text = applyChatTemplate(readFileSync(file, "utf8"), msgs, { tools: TOOLS, addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>" });
  assert.ok(text.includes("[AVAILABLE_TOOLS]") && text.includes('"get_weather"'), text);
  const turn = text.slice(text.indexOf("[TOOL_CALLS]")).replace(/<\/s>$/, "");
  const parsed = parseToolCalls(turn, "mistral");
  assert.equal(parsed.content, "");
  assert.deepEqual(parsed.toolCalls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), [["roll", { sides: 6 }], ["get_weather", { city: "Rome", unit: "c" }]]);
});

test("tool definitions and tool_choice are checked", () => {
  assert.throws(() => checkTools([{ type: "function", function: { name: "bad name!" } }]), /function\.name/);
  assert.throws(() => checkTools([TOOLS[0], TOOLS[0]]), /defined twice/);
  assert.equal(checkToolChoice(undefined, TOOLS), "auto");
  assert.throws(() => checkToolChoice({ type: "function", function: { name: "nope" } }, TOOLS), /not among the tools/);
  assert.throws(() => checkToolChoice("required", []), OptionError);
});

test("tool_choice required / named: constrained generation yields valid calls on a random-weight model", async () => {
  const llm = await LLM.load("synthetic:tiny", { maxSeqs: 8, maxSeqLen: 512 });
  const required = toolChoiceConstraint(TOOLS, "required")!;
  const [r] = await llm.generate("call a tool:", { temperature: 1, seed: 4, n: 4, maxTokens: 200, constraint: required });
  let finished = 0;
  for (const o of r.outputs) {
    if (o.finishReason !== "stop") continue;
    finished++;
    const calls = constrainedToolCalls(o.text, "required")!;
    assert.ok(calls.length >= 1, o.text);
    for (const c of calls) {
      const tool = TOOLS.find((t) => t.function.name === c.function.name)!;
      assert.ok(schemaValidator(tool.function.parameters)(JSON.parse(c.function.arguments)), o.text);
    }
  }
  assert.ok(finished >= 2, "most calls finish");
  const named = { type: "function", function: { name: "roll" } } as const;
  const [n] = await llm.generate("roll:", { temperature: 1, seed: 5, maxTokens: 40, constraint: toolChoiceConstraint(TOOLS, named)! });
  const [c] = constrainedToolCalls(n.outputs[0].text, named, () => "call_x")!;
  assert.equal(c.function.name, "roll");
  const sides = JSON.parse(c.function.arguments).sides;
  assert.ok(Number.isInteger(sides) && sides >= 2 && sides <= 20, c.function.arguments);
  llm.close();
});

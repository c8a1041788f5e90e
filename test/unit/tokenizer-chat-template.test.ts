/**
 * Chat templates: the published templates collected by mistral.rs render a two-turn
 * conversation with their markers; Mistral's reference template reproduces
 * mistral-common's rendered text and token ids; raise_exception becomes a typed error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { applyChatTemplate, applyTokenizerChatTemplate, ChatTemplateError, encodeChatPrompt, type ChatMessage } from "../../src/tokenizer/chat-template.js";
import { loadSpmModel } from "../../src/tokenizer/spm-model.js";
import { loadGgufTokenizer } from "../../src/tokenizer/gguf.js";
import { splitOnSpecialTokens } from "../../src/tokenizer/vocab.js";

const TWO_TURNS: ChatMessage[] = [
  { role: "user", content: "Hi there" },
  { role: "assistant", content: "Hello! How can I help?" },
  { role: "user", content: "Tell me a joke." },
];

const EXPECTED: Record<string, { bos: string; eos: string; want: string[] }> = {
  llama2: { bos: "<s>", eos: "</s>", want: ["<s>[INST] Hi there [/INST]", " Hello! How can I help? </s>", "<s>[INST] Tell me a joke. [/INST]"] },
  llama3: {
    bos: "<|begin_of_text|>",
    eos: "<|eot_id|>",
    want: ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"],
  },
  mistral: { bos: "<s>", eos: "</s>", want: ["<s>[INST] Hi there [/INST]", "Hello! How can I help?</s> [INST] Tell me a joke. [/INST]"] },
  phi3: { bos: "<s>", eos: "<|endoftext|>", want: ["<s><|user|>\nHi there<|end|>\n<|assistant|>\n", "Hello! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n"] },
};

for (const [name, exp] of Object.entries(EXPECTED)) {
  test(`chat template ${name} (mistral.rs collection) renders a two-turn conversation`, (t) => {
    const p = fixture(t, `models/chat-templates/mistral.rs/${name}.json`);
    if (!p) return;
    const template = (JSON.parse(readFileSync(p, "utf8")) as { chat_template: string }).chat_template;
    const out = applyChatTemplate(template, TWO_TURNS, { bosToken: exp.bos, eosToken: exp.eos, addGenerationPrompt: true });
    let at = 0;
    for (const part of exp.want) {
      const i = out.indexOf(part, at);
      assert.ok(i >= 0, `${JSON.stringify(part)} in order in ${JSON.stringify(out)}`);
      at = i + part.length;
    }
  });
}

test("raise_exception in a template becomes a ChatTemplateError with the template's message", (t) => {
  const p = fixture(t, "models/chat-templates/mistral.rs/mistral.json");
  if (!p) return;
  const template = (JSON.parse(readFileSync(p, "utf8")) as { chat_template: string }).chat_template;
  assert.throws(
    () => applyChatTemplate(template, [{ role: "assistant", content: "first" }], { bosToken: "<s>", eosToken: "</s>" }),
    (e: unknown) => e instanceof ChatTemplateError && e.code === "chat_template" && e.message.includes("Conversation roles must alternate"),
  );
  assert.throws(() => applyChatTemplate("{% if %}", TWO_TURNS), ChatTemplateError);
});

test("tools and extra variables reach the template", () => {
  const tpl = "{% for t in tools %}[{{ t.name }}]{% endfor %}{{ messages[-1].content }}{% if enable_thinking %}!{% endif %}";
  assert.equal(applyChatTemplate(tpl, TWO_TURNS, { tools: [{ name: "calc" }, { name: "web" }], extra: { enable_thinking: true } }), "[calc][web]Tell me a joke.!");
});

test("Mistral v1 reference template reproduces mistral-common's text and token ids (samples/no_tools)", (t) => {
  const M = "models/tokenizers/mistral/";
  const paths = fixtures(t, M + "samples/no_tools/sample.json", M + "samples/no_tools/text_v1.txt", M + "samples/no_tools/tokens_v1.json", M + "chat_templates/v1_spm.jinja", M + "tokenizer.model.v1");
  if (!paths) return;
  const [sampleP, textP, tokensP, tplP, modelP] = paths;
  const sample = JSON.parse(readFileSync(sampleP, "utf8")) as { messages: ChatMessage[] };
  const rendered = applyChatTemplate(readFileSync(tplP, "utf8"), sample.messages, { bosToken: "<s>", eosToken: "</s>", addGenerationPrompt: false });
  // mistral-common prints the instruct text as pieces: "▁" for each space.
  assert.equal(rendered.replaceAll(" ", "\u2581"), readFileSync(textP, "utf8"));
  // mistral-common encodes each text chunk with SentencePiece (its dummy prefix is the
  // space the template writes after <s> / </s>), so encode chunk by chunk to compare.
  const tok = loadSpmModel(modelP);
  const ids: number[] = [];
  for (const f of splitOnSpecialTokens(rendered, [{ id: 1, text: "<s>" }, { id: 2, text: "</s>" }])) {
    if (typeof f === "number") ids.push(f);
    else ids.push(...tok.encode(f.startsWith(" ") ? f.slice(1) : f, { addBos: false }));
  }
  assert.deepEqual(ids, (JSON.parse(readFileSync(tokensP, "utf8")) as { tokens: number[] }).tokens);
});

test("a GGUF's own template and BOS: render, then encode without a second BOS", (t) => {
  const p = fixture(t, "models/tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf");
  if (!p) return;
  const tok = loadGgufTokenizer(p);
  const text = applyTokenizerChatTemplate(tok, [{ role: "user", content: "Hi" }]);
  assert.equal(text, "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
  const ids = encodeChatPrompt(tok, text);
  assert.deepEqual(ids, [1, 32010, 6324, 32007, 32001]);
});

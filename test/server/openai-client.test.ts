/**
 * The official `openai` npm client against a live server on stories260K (trained, 512-token
 * vocab): completions and chat, streamed and not, n=2, stop, seed reproducibility, logprobs.
 *
 * stories260K has no chat template, and the server refuses chat for it with a 400 that says
 * so (tested first). For chat the server is started again with `tokenizer` (the CLI's
 * `--tokenizer`) pointing at a vocab-only GGUF written here: stories260K's own vocabulary
 * (copied from models/stories260K-gguf) plus a small chat template.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test, type TestContext } from "node:test";
import OpenAI from "openai";
import { readGgufMetadata, GgufArray } from "../../src/checkpoint/gguf.js";
import { writeGguf, type GgufWriteValue } from "../../src/checkpoint/write-gguf.js";
import type { RunningServer } from "../../src/server/server.js";
import { fixtures } from "../helpers/fixtures.js";
import { startTestServer } from "./helpers.js";

const API_KEY = "sk-test-openai-client";
const MODEL = "stories260K";
const TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n" +
  "{% elif m['role'] == 'system' %}{{ m['content'] }}\n{% else %}Assistant: {{ m['content'] }}\n{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}Assistant:{% endif %}";

const servers: RunningServer[] = [];
let tmp: string | null = null;
after(async () => {
  await Promise.all(servers.map((s) => s.close(1000)));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** One server per kind, started on first use: "plain" is stories260K as it is, "chat" has the templated tokenizer. */
const started = new Map<string, Promise<OpenAI>>();
function client(t: TestContext, kind: "plain" | "chat"): Promise<OpenAI> | null {
  const paths = fixtures(t, "models/stories260K", "models/stories260K-gguf/stories260K.gguf");
  if (paths === null) return null;
  const [model, gguf] = paths;
  let c = started.get(kind);
  if (!c) {
    c = (async () => {
      const s = await startTestServer({ model, servedModelName: MODEL, apiKey: API_KEY, ...(kind === "chat" ? { tokenizer: templatedTokenizer(gguf) } : {}) });
      servers.push(s);
      return new OpenAI({ baseURL: `${s.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 30_000 });
    })();
    started.set(kind, c);
  }
  return c;
}

/** A vocab-only GGUF: every tokenizer.* key of stories260K.gguf, plus tokenizer.chat_template. */
function templatedTokenizer(gguf: string): string {
  const meta = readGgufMetadata(gguf);
  const out: Record<string, GgufWriteValue> = {};
  for (const key of meta.keys()) {
    if (!key.startsWith("tokenizer.")) continue;
    const v = meta.get(key)!;
    const type = meta.type(key)!;
    if (v instanceof GgufArray) out[key] = { type: "array", itemType: v.itemType as any, value: v.toArray() as any };
    else if (typeof v === "string" || typeof v === "boolean") out[key] = v;
    else out[key] = { type: type as any, value: v as number | bigint };
  }
  out["general.architecture"] = "llama";
  out["tokenizer.chat_template"] = TEMPLATE;
  tmp ??= mkdtempSync(join(tmpdir(), "llmrt-openai-client-"));
  const file = join(tmp, "stories260K-chat-tokenizer.gguf");
  writeGguf(file, out, []);
  return file;
}

async function textOfStream(stream: AsyncIterable<any>): Promise<{ texts: string[]; finish: (string | null)[]; chunks: number }> {
  const texts: string[] = [];
  const finish: (string | null)[] = [];
  let chunks = 0;
  for await (const ev of stream) {
    chunks++;
    for (const c of ev.choices ?? []) {
      texts[c.index] = (texts[c.index] ?? "") + (c.text ?? c.delta?.content ?? "");
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { texts, finish, chunks };
}

const PROMPT = "Once upon a time, there was a little girl";

test("chat on a model without a chat template is a 400 that says so", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  await assert.rejects(
    api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
    (e: any) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e?.constructor?.name}: ${e?.message}`);
      assert.equal(e.status, 400);
      assert.match(e.message, /chat template/);
      return true;
    },
  );
});

test("models.list names the served model", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const models = await api.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test("a wrong API key is an AuthenticationError", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const bad = new OpenAI({ baseURL: api.baseURL, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(bad.completions.create({ model: MODEL, prompt: "a", max_tokens: 1 }), (e: any) => e instanceof OpenAI.AuthenticationError);
});

test("completions: whole and streamed give the same greedy text and usage", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const r = await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const text = r.choices[0].text;
  assert.ok(text.length > 10, `a trained model writes a story: ${JSON.stringify(text)}`);
  assert.match(text, /[a-z]{2,}/);
  assert.equal(r.usage!.completion_tokens, 24);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 24);
  assert.equal(r.choices[0].finish_reason, "length");

  const stream = await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let usage: any = null;
  const texts: string[] = [];
  let chunks = 0;
  for await (const ev of stream) {
    chunks++;
    if (ev.usage) usage = ev.usage;
    for (const ch of ev.choices) texts[ch.index] = (texts[ch.index] ?? "") + ch.text;
  }
  assert.ok(chunks > 3, `streamed in pieces (${chunks} chunks)`);
  assert.deepEqual(texts, [text]);
  assert.deepEqual(usage, r.usage);
});

test("completions: n=2 gives two choices, streamed or not", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const r = await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 20, temperature: 1, n: 2, seed: 5 });
  assert.deepEqual(r.choices.map((ch) => ch.index), [0, 1]);
  assert.notEqual(r.choices[0].text, r.choices[1].text, "two samples at temperature 1 differ");
  const allRan = r.choices.every((ch) => ch.finish_reason === "length");
  if (allRan) assert.equal(r.usage!.completion_tokens, 40, "usage counts both choices");
  else assert.ok(r.usage!.completion_tokens <= 40);
  const st = await textOfStream(await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 20, temperature: 1, n: 2, seed: 5, stream: true }));
  assert.equal(st.texts.length, 2);
  assert.deepEqual(st.texts, r.choices.map((ch) => ch.text), "the same seed streams the same two samples");
});

test("completions: stop strings cut the text before the match, streamed or not", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const free = (await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0 })).choices[0].text;
  const stop = free.slice(15, 19);
  assert.equal(stop.length, 4);
  const expected = free.slice(0, free.indexOf(stop));
  const r = await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0, stop: [stop, "@@@"] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, "stop");
  const st = await textOfStream(await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 40, temperature: 0, stop, stream: true }));
  assert.deepEqual(st.texts, [expected]);
  assert.deepEqual(st.finish, ["stop"]);
});

test("completions: the same seed at temperature 1 gives the same text; another seed another", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const body = { model: MODEL, prompt: PROMPT, max_tokens: 32, temperature: 1 } as const;
  const a = (await api.completions.create({ ...body, seed: 1234 })).choices[0].text;
  const b = (await api.completions.create({ ...body, seed: 1234 })).choices[0].text;
  const d = (await api.completions.create({ ...body, seed: 4321 })).choices[0].text;
  assert.equal(a, b);
  assert.notEqual(a, d);
});

test("completions: logprobs give the chosen tokens and their top alternatives", async (t) => {
  const c = client(t, "plain");
  if (!c) return;
  const api = await c;
  const r = await api.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 3 });
  const ch = r.choices[0];
  const lp = ch.logprobs!;
  assert.equal(lp.tokens!.length, 8);
  assert.equal(lp.token_logprobs!.length, 8);
  assert.equal(lp.top_logprobs!.length, 8);
  assert.equal(lp.tokens!.join(""), ch.text);
  for (let i = 0; i < 8; i++) {
    const top = lp.top_logprobs![i] as Record<string, number>;
    const alts = Object.values(top);
    assert.ok(alts.length >= 1 && alts.length <= 4, `top_logprobs[${i}] has ${alts.length} entries`);
    assert.ok(lp.token_logprobs![i] <= 0);
    // greedy: the chosen token is the most likely one
    assert.ok(Math.abs(Math.max(...alts) - lp.token_logprobs![i]) < 1e-4, `token ${i} is the argmax`);
  }
  assert.deepEqual(lp.text_offset!.length, 8);
});

test("chat: whole and streamed give the same greedy reply", async (t) => {
  const c = client(t, "chat");
  if (!c) return;
  const api = await c;
  const messages = [{ role: "user" as const, content: "Tell me a story about a cat." }];
  const r = await api.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, MODEL);
  const msg = r.choices[0].message;
  assert.equal(msg.role, "assistant");
  assert.ok((msg.content ?? "").length > 0);
  assert.ok(r.usage!.prompt_tokens > 5);
  assert.ok(r.usage!.completion_tokens <= 24);

  const stream = await api.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let role: string | undefined;
  let usage: any = null;
  let finish: string | null = null;
  for await (const ev of stream) {
    if (ev.usage) usage = ev.usage;
    const d = ev.choices[0];
    if (!d) continue;
    role ??= d.delta.role;
    text += d.delta.content ?? "";
    if (d.finish_reason) finish = d.finish_reason;
  }
  assert.equal(role, "assistant");
  assert.equal(text, msg.content);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage, r.usage);
});

test("chat: n=2, stop, and seed reproducibility", async (t) => {
  const c = client(t, "chat");
  if (!c) return;
  const api = await c;
  const messages = [{ role: "user" as const, content: "Once upon a time" }];
  const body = { model: MODEL, messages, max_tokens: 30, temperature: 1 } as const;
  const two = await api.chat.completions.create({ ...body, n: 2, seed: 11 });
  assert.deepEqual(two.choices.map((ch) => ch.index), [0, 1]);
  assert.notEqual(two.choices[0].message.content, two.choices[1].message.content);
  const st = await textOfStream(await api.chat.completions.create({ ...body, n: 2, seed: 11, stream: true }));
  assert.deepEqual(st.texts, two.choices.map((ch) => ch.message.content));

  const a = await api.chat.completions.create({ ...body, seed: 99 });
  const b = await api.chat.completions.create({ ...body, seed: 99 });
  const d = await api.chat.completions.create({ ...body, seed: 100 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content, d.choices[0].message.content);

  const free = (await api.chat.completions.create({ ...body, temperature: 0, max_tokens: 40 })).choices[0].message.content!;
  assert.ok(free.length >= 12, `greedy reply long enough to cut: ${JSON.stringify(free)}`);
  const stop = free.slice(8, 11);
  const expected = free.slice(0, free.indexOf(stop));
  const cut = await api.chat.completions.create({ ...body, temperature: 0, max_tokens: 40, stop: [stop] });
  assert.equal(cut.choices[0].message.content, expected);
  assert.equal(cut.choices[0].finish_reason, "stop");
});

test("chat: logprobs with top_logprobs 3", async (t) => {
  const c = client(t, "chat");
  if (!c) return;
  const api = await c;
  const r = await api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hello" }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs!.content!;
  assert.ok(content.length >= 1 && content.length <= 6);
  assert.equal(content.map((x) => x.token).join(""), r.choices[0].message.content);
  for (const x of content) {
    assert.ok(x.logprob <= 0);
    assert.ok(Array.isArray(x.bytes));
    assert.equal(x.top_logprobs.length, 3);
    const best = Math.max(...x.top_logprobs.map((y) => y.logprob));
    assert.ok(Math.abs(best - x.logprob) < 1e-4, "greedy picks the most likely token");
    assert.ok(x.top_logprobs.some((y) => y.token === x.token));
  }
  // streamed: the same logprobs arrive chunk by chunk
  const stream = await api.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hello" }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3, stream: true });
  const streamed: any[] = [];
  for await (const ev of stream) streamed.push(...(ev.choices[0]?.logprobs?.content ?? []));
  assert.deepEqual(streamed.map((x) => x.token), content.map((x) => x.token));
});

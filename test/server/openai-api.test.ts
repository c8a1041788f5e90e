/**
 * An OpenAI-shaped client flow against a live server (synthetic:tiny, random weights,
 * an ASCII tokenizer: one token per character plus BOS): completions and chat,
 * streamed and not, usage, n, stop, seed, logprobs, tokenize/detokenize, the page.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { RunningServer } from "../../src/server/server.js";
import { postJson, postSse, startTestServer, streamedTexts } from "./helpers.js";

let s: RunningServer;
before(async () => {
  s = await startTestServer({ servedModelName: "tiny" });
});
after(() => s.close(1000));

// Special tokens (<unk>, <s>, </s>) decode to nothing; banning them makes one token exactly one character.
const noSpecials = { "0": -100, "1": -100, "2": -100 };
const greedy = { temperature: 0, ignore_eos: true, logit_bias: noSpecials };

describe("models and page", () => {
  test("GET /v1/models lists the served model and says it has random weights", async () => {
    const r = await fetch(`${s.url}/v1/models`);
    const body = (await r.json()) as any;
    assert.equal(r.status, 200);
    assert.equal(body.object, "list");
    assert.equal(body.data[0].id, "tiny");
    assert.equal(body.data[0].object, "model");
    assert.equal(body.data[0].max_model_len, 512);
    assert.equal(body.data[0].random_weights, true);
  });

  test("GET / serves the chat page", async () => {
    const r = await fetch(`${s.url}/`);
    const html = await r.text();
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /text\/html/);
    assert.match(html, /<title>llmrt chat<\/title>/);
    assert.match(html, /\/v1\/chat\/completions/);
    assert.match(html, /random weights/);
    assert.doesNotMatch(html, /https?:\/\/(?!127)/, "no CDN or remote asset");
  });
});

describe("/v1/completions", () => {
  test("non-streaming: shape, usage and finish reason", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { model: "tiny", prompt: "Once upon", max_tokens: 12, ...greedy });
    assert.equal(r.status, 200);
    assert.match(r.body.id, /^cmpl-/);
    assert.equal(r.body.object, "text_completion");
    assert.equal(r.body.model, "tiny");
    assert.equal(typeof r.body.created, "number");
    assert.equal(r.body.choices.length, 1);
    const c = r.body.choices[0];
    assert.equal(c.index, 0);
    assert.equal(c.finish_reason, "length");
    assert.equal(c.logprobs, null);
    assert.equal(c.text.length, 12); // one character per token
    assert.deepEqual(r.body.usage, { prompt_tokens: 10, completion_tokens: 12, total_tokens: 22 }); // BOS + 9 characters
  });

  test("streaming gives the same text, ends with [DONE], and reports usage when asked", async () => {
    const body = { prompt: "Once upon", max_tokens: 12, ...greedy };
    const whole = await postJson(`${s.url}/v1/completions`, body);
    const st = await postSse(`${s.url}/v1/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(st.status, 200);
    assert.match(st.contentType ?? "", /text\/event-stream/);
    assert.equal(st.events.at(-1), "[DONE]");
    assert.deepEqual(streamedTexts(st.events), [whole.body.choices[0].text]);
    const usage = st.events.at(-2);
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(usage.usage, whole.body.usage);
    const finals = st.events.filter((e) => e !== "[DONE]" && e.choices[0]?.finish_reason);
    assert.equal(finals.length, 1);
    assert.equal(finals[0].choices[0].finish_reason, "length");
    // without include_usage there is no usage chunk
    const plain = await postSse(`${s.url}/v1/completions`, { ...body, stream: true });
    assert.ok(plain.events.every((e) => e === "[DONE]" || e.usage === undefined));
  });

  test("n=2 returns two choices, and usage counts both", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "abc", n: 2, max_tokens: 16, temperature: 1, seed: 7, ignore_eos: true, logit_bias: noSpecials });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.choices.map((c: any) => c.index), [0, 1]);
    assert.notEqual(r.body.choices[0].text, r.body.choices[1].text, "two samples of 16 random characters differ");
    assert.equal(r.body.usage.completion_tokens, 32);
    assert.equal(r.body.usage.prompt_tokens, 4);
  });

  test("the same seed gives the same text; another seed another", async () => {
    const body = { prompt: "xyz", max_tokens: 20, temperature: 1, ignore_eos: true };
    const a = await postJson(`${s.url}/v1/completions`, { ...body, seed: 42 });
    const b = await postJson(`${s.url}/v1/completions`, { ...body, seed: 42 });
    const c = await postJson(`${s.url}/v1/completions`, { ...body, seed: 43 });
    assert.equal(a.body.choices[0].text, b.body.choices[0].text);
    assert.notEqual(a.body.choices[0].text, c.body.choices[0].text);
  });

  test("stop strings end the text before the match, streamed or not", async () => {
    const free = await postJson(`${s.url}/v1/completions`, { prompt: "Hello", max_tokens: 40, ...greedy });
    const text: string = free.body.choices[0].text;
    const stop = text.slice(10, 12);
    const expected = text.slice(0, text.indexOf(stop));
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "Hello", max_tokens: 40, stop: [stop, "~~~~"], ...greedy });
    assert.equal(r.body.choices[0].text, expected);
    assert.equal(r.body.choices[0].finish_reason, "stop");
    assert.equal(r.body.choices[0].stop_reason, stop);
    const st = await postSse(`${s.url}/v1/completions`, { prompt: "Hello", max_tokens: 40, stop, stream: true, ...greedy });
    assert.deepEqual(streamedTexts(st.events), [expected]);
  });

  test("logprobs: tokens, token_logprobs, top_logprobs and text_offset", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "The", max_tokens: 6, logprobs: 3, ...greedy });
    const c = r.body.choices[0];
    const lp = c.logprobs;
    assert.equal(lp.tokens.length, 6);
    assert.equal(lp.tokens.join(""), c.text);
    assert.deepEqual(lp.text_offset, [0, 1, 2, 3, 4, 5]);
    for (const [i, top] of lp.top_logprobs.entries()) {
      assert.ok(lp.token_logprobs[i] <= 0);
      const entries = Object.entries(top) as [string, number][];
      assert.ok(entries.length >= 3 && entries.length <= 4);
      // greedy: the chosen token is the most likely one
      assert.equal(Math.max(...entries.map(([, v]) => v)), lp.token_logprobs[i]);
    }
    const st = await postSse(`${s.url}/v1/completions`, { prompt: "The", max_tokens: 6, logprobs: 3, stream: true, ...greedy });
    const streamed = st.events.filter((e) => e !== "[DONE]" && e.choices[0]?.logprobs).flatMap((e) => e.choices[0].logprobs.tokens);
    assert.deepEqual(streamed, lp.tokens);
    const offsets = st.events.filter((e) => e !== "[DONE]" && e.choices[0]?.logprobs).flatMap((e) => e.choices[0].logprobs.text_offset);
    assert.deepEqual(offsets, lp.text_offset);
  });

  test("prompts as token ids and as a batch number the choices prompt-major", async () => {
    const ids = (await postJson(`${s.url}/tokenize`, { prompt: "Hi" })).body.tokens;
    const r = await postJson(`${s.url}/v1/completions`, { prompt: [ids, ids], n: 2, max_tokens: 3, ...greedy });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.choices.map((c: any) => c.index), [0, 1, 2, 3]);
    const texts = await postJson(`${s.url}/v1/completions`, { prompt: ["Hi", "Hi"], max_tokens: 3, ...greedy });
    assert.equal(texts.body.choices[1].text, r.body.choices[3].text);
  });

  test("logit_bias steers greedy decoding; extensions top_k, min_p, repetition_penalty are accepted", async () => {
    const [, z] = (await postJson(`${s.url}/tokenize`, { prompt: "z" })).body.tokens;
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "a", max_tokens: 5, ...greedy, logit_bias: { [z]: 100 } });
    assert.equal(r.body.choices[0].text, "zzzzz");
    const ext = await postJson(`${s.url}/v1/completions`, { prompt: "a", max_tokens: 5, top_k: 5, min_p: 0.05, repetition_penalty: 1.3, temperature: 0.7, seed: 1 });
    assert.equal(ext.status, 200);
    assert.equal(ext.body.choices[0].text.length > 0, true);
  });

  test("echo prepends the prompt; with logprobs it scores the prompt too; max_tokens 0 scores only", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "Echo", echo: true, max_tokens: 3, ...greedy });
    assert.ok(r.body.choices[0].text.startsWith("Echo"));
    assert.equal(r.body.choices[0].text.length, 7);

    const lp = await postJson(`${s.url}/v1/completions`, { prompt: "Echo", echo: true, max_tokens: 3, logprobs: 1, ...greedy });
    const c = lp.body.choices[0];
    assert.equal(c.text, r.body.choices[0].text);
    assert.deepEqual(c.logprobs.tokens.slice(0, 5), ["<s>", "E", "c", "h", "o"]);
    assert.equal(c.logprobs.token_logprobs[0], null, "nothing predicts the first token");
    assert.equal(c.logprobs.top_logprobs[0], null);
    assert.equal(c.logprobs.tokens.length, 8);
    assert.ok(c.logprobs.token_logprobs.slice(1).every((x: number) => x <= 0));

    const score = await postJson(`${s.url}/v1/completions`, { prompt: "Echo", echo: true, max_tokens: 0, logprobs: 0, temperature: 0 });
    assert.equal(score.status, 200);
    const sc = score.body.choices[0];
    assert.equal(sc.text, "Echo");
    assert.deepEqual(sc.logprobs.token_logprobs, c.logprobs.token_logprobs.slice(0, 5), "the same prompt scores");
    assert.equal(score.body.usage.completion_tokens, 0);

    const st = await postSse(`${s.url}/v1/completions`, { prompt: "Echo", echo: true, max_tokens: 3, logprobs: 1, stream: true, ...greedy });
    assert.deepEqual(streamedTexts(st.events), [c.text]);
    const streamed = st.events.filter((e) => e !== "[DONE]" && e.choices[0]?.logprobs).flatMap((e) => e.choices[0].logprobs.token_logprobs);
    assert.deepEqual(streamed, c.logprobs.token_logprobs);
  });
});

describe("/v1/chat/completions", () => {
  const messages = [
    { role: "system", content: "Be brief." },
    { role: "user", content: [{ type: "text", text: "Hi" }, { type: "text", text: "there" }] },
  ];

  test("non-streaming: assistant message, usage equals the templated prompt's tokens", async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: "tiny", messages, max_completion_tokens: 8, ...greedy });
    assert.equal(r.status, 200);
    assert.match(r.body.id, /^chatcmpl-/);
    assert.equal(r.body.object, "chat.completion");
    const c = r.body.choices[0];
    assert.equal(c.message.role, "assistant");
    assert.equal(c.message.content.length, 8);
    assert.equal(c.finish_reason, "length");
    const tok = await postJson(`${s.url}/tokenize`, { messages });
    assert.equal(r.body.usage.prompt_tokens, tok.body.count);
    assert.equal(r.body.usage.completion_tokens, 8);
  });

  test("streaming: role first, the same content, a finish chunk, [DONE]", async () => {
    const whole = await postJson(`${s.url}/v1/chat/completions`, { messages, max_tokens: 10, ...greedy });
    const st = await postSse(`${s.url}/v1/chat/completions`, { messages, max_tokens: 10, stream: true, stream_options: { include_usage: true }, ...greedy });
    assert.equal(st.events[0].object, "chat.completion.chunk");
    assert.deepEqual(st.events[0].choices[0].delta, { role: "assistant", content: "" });
    assert.deepEqual(streamedTexts(st.events), [whole.body.choices[0].message.content]);
    assert.equal(st.events.at(-1), "[DONE]");
    assert.deepEqual(st.events.at(-2).usage, whole.body.usage);
    assert.ok(st.events.some((e) => e !== "[DONE]" && e.choices[0]?.finish_reason === "length"));
  });

  test("n=2 streams two choices", async () => {
    const st = await postSse(`${s.url}/v1/chat/completions`, { messages, max_tokens: 6, n: 2, stream: true, temperature: 1, seed: 3, ignore_eos: true, logit_bias: noSpecials });
    const texts = streamedTexts(st.events);
    assert.equal(texts.length, 2);
    assert.equal(texts[0].length, 6);
    assert.equal(texts[1].length, 6);
  });

  test("logprobs: content entries with token, logprob, bytes and top_logprobs", async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { messages, max_tokens: 4, logprobs: true, top_logprobs: 2, ...greedy });
    const lp = r.body.choices[0].logprobs;
    assert.equal(lp.content.length, 4);
    assert.equal(lp.content.map((e: any) => e.token).join(""), r.body.choices[0].message.content);
    for (const e of lp.content) {
      assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
      assert.equal(e.top_logprobs.length, 2);
      assert.equal(e.top_logprobs[0].logprob, e.logprob); // greedy picks the top one
    }
    const none = await postJson(`${s.url}/v1/chat/completions`, { messages, max_tokens: 2, ...greedy });
    assert.equal(none.body.choices[0].logprobs, null);
    const st = await postSse(`${s.url}/v1/chat/completions`, { messages, max_tokens: 4, logprobs: true, stream: true, ...greedy });
    const streamed = st.events.filter((e) => e !== "[DONE]" && e.choices[0]?.logprobs).flatMap((e) => e.choices[0].logprobs.content);
    assert.deepEqual(streamed.map((e: any) => e.token), lp.content.map((e: any) => e.token));
    assert.ok(streamed.every((e: any) => e.top_logprobs.length === 0));
  });
});

describe("tokenizer endpoints", () => {
  test("/tokenize and /detokenize round-trip (vLLM's shapes)", async () => {
    const t = await postJson(`${s.url}/tokenize`, { prompt: "Hi!" });
    assert.equal(t.status, 200);
    assert.equal(t.body.count, 4);
    assert.equal(t.body.max_model_len, 512);
    assert.equal(t.body.tokens[0], 1); // BOS
    const bare = await postJson(`${s.url}/tokenize`, { prompt: "Hi!", add_special_tokens: false });
    assert.deepEqual(bare.body.tokens, t.body.tokens.slice(1));
    const d = await postJson(`${s.url}/detokenize`, { tokens: t.body.tokens });
    assert.deepEqual(d.body, { prompt: "Hi!" });
    const bad = await postJson(`${s.url}/detokenize`, { tokens: [100000] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.param, "tokens");
  });
});

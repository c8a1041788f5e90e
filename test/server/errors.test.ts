/**
 * Every error a client can provoke comes back in OpenAI's shape with the right status,
 * and a few hundred malformed bodies neither crash the server nor leak requests.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ServerContext } from "../../src/server/context.js";
import { renderChat } from "../../src/server/openai/chat.js";
import { ApiError } from "../../src/server/openai/errors.js";
import type { RunningServer } from "../../src/server/server.js";
import type { WorkerLLM } from "../../src/server/worker-llm.js";
import type { ModelInfo } from "../../src/server/worker-protocol.js";
import { ServerMetrics } from "../../src/server/metrics.js";
import { postJson, startTestServer, waitFor } from "./helpers.js";

const KEY = "sk-test-123";
const auth = { authorization: `Bearer ${KEY}` };
let s: RunningServer;
before(async () => {
  s = await startTestServer({ apiKey: KEY, bodyLimit: 64 * 1024, servedModelName: "tiny" });
});
after(() => s.close(1000));

function assertOpenAIError(r: { status: number; body: any }, status: number, param?: string | null): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(typeof r.body?.error?.message, "string");
  assert.equal(typeof r.body.error.type, "string");
  assert.ok("param" in r.body.error && "code" in r.body.error, "param and code are present (possibly null)");
  if (param !== undefined) assert.equal(r.body.error.param, param);
}

const chat = (extra: object = {}) => ({ messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...extra });

describe("authentication", () => {
  test("missing or wrong API key -> 401; /health and /metrics stay open", async () => {
    const none = await postJson(`${s.url}/v1/chat/completions`, chat());
    assertOpenAIError(none, 401);
    assert.equal(none.body.error.code, "invalid_api_key");
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, chat(), { authorization: "Bearer nope" }), 401);
    assertOpenAIError(await postJson(`${s.url}/tokenize`, { prompt: "x" }), 401);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    assert.equal((await fetch(`${s.url}/metrics`)).status, 200);
    assert.equal((await postJson(`${s.url}/v1/chat/completions`, chat(), auth)).status, 200);
  });
});

describe("bad requests", () => {
  test("invalid JSON -> 400", async () => {
    const r = await postJson(`${s.url}/v1/completions`, '{"prompt": "x", ', auth);
    assertOpenAIError(r, 400);
    assert.equal(r.body.error.code, "invalid_json");
    assertOpenAIError(await postJson(`${s.url}/v1/completions`, "[1, 2]", auth), 400);
    // JSON sent without a JSON content type is still parsed
    const plain = await fetch(`${s.url}/v1/completions`, { method: "POST", headers: { ...auth, "content-type": "text/plain" }, body: JSON.stringify({ prompt: "x", max_tokens: 1 }) });
    assert.equal(plain.status, 200);
  });

  test("invalid fields -> 400 naming the field", async () => {
    const cases: [object, string][] = [
      [{ prompt: "x", temperature: "hot" }, "temperature"],
      [{ prompt: "x", max_tokens: 0 }, "max_tokens"],
      [{ prompt: "x", n: 0 }, "n"],
      [{ prompt: "x", top_p: 1.5 }, "top_p"],
      [{ prompt: "x", logprobs: 99 }, "logprobs"],
      [{ prompt: "x", stop: 5 }, "stop"],
      [{ prompt: "x", logit_bias: { "5": 500 } }, "logit_bias.5"],
      [{ prompt: "x", logit_bias: { "100000": 1 } }, "logit_bias"],
      [{ prompt: 12 }, "prompt"],
      [{ max_tokens: 3 }, "prompt"],
    ];
    for (const [body, param] of cases) {
      const r = await postJson(`${s.url}/v1/completions`, body, auth);
      assertOpenAIError(r, 400, param);
      assert.ok(r.body.error.message.includes(param.split(".")[0]), r.body.error.message);
    }
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: "wizard", content: "x" }] }, auth), 400, "messages[0].role");
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, { messages: [] }, auth), 400, "messages");
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, chat({ top_logprobs: 2 }), auth), 400, "top_logprobs");
    const image = { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] };
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, image, auth), 400, "messages[0].content[0]");
  });

  test("prompt + max_tokens beyond the context -> 400 stating both numbers", async () => {
    const prompt = "a".repeat(450); // 451 tokens with BOS
    const r = await postJson(`${s.url}/v1/completions`, { prompt, max_tokens: 100 }, auth);
    assertOpenAIError(r, 400, "prompt");
    assert.equal(r.body.error.code, "context_length_exceeded");
    assert.match(r.body.error.message, /512/);
    assert.match(r.body.error.message, /451 in the prompt/);
    assert.match(r.body.error.message, /100 for the completion/);
    const long = await postJson(`${s.url}/v1/chat/completions`, { messages: [{ role: "user", content: "a".repeat(600) }] }, auth);
    assertOpenAIError(long, 400, "messages");
    assert.match(long.body.error.message, /512/);
  });

  test("bad response_format and tools -> 400 naming the field; tools without a known call format -> 400 that says so", async () => {
    const rf = await postJson(`${s.url}/v1/chat/completions`, chat({ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: 5 } } } }), auth);
    assertOpenAIError(rf, 400, "response_format.json_schema.schema");
    assert.match(rf.body.error.message, /invalid JSON schema/);
    assert.equal((await postJson(`${s.url}/v1/chat/completions`, chat({ response_format: { type: "text" } }), auth)).status, 200);
    const auto = await postJson(`${s.url}/v1/chat/completions`, chat({ tools: [{ type: "function", function: { name: "f" } }] }), auth);
    assertOpenAIError(auto, 400, "tools");
    assert.match(auto.body.error.message, /--tool-call-parser/);
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, chat({ tools: [{ type: "function", function: { name: "a b" } }] }), auth), 400, "tools[0].function.name");
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, chat({ tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } } }), auth), 400, "tool_choice");
  });

  test("a model without a chat template -> 400 that says so", async () => {
    const info = { hasChatTemplate: false } as ModelInfo;
    const ctx = new ServerContext({ info } as unknown as WorkerLLM, new ServerMetrics("x"), "x");
    await assert.rejects(renderChat(ctx, [{ role: "user", content: "hi" }], true), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 400);
      assert.match(e.message, /no chat template/);
      return true;
    });
  });
});

describe("not found and too large", () => {
  test("unknown model -> 404", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { model: "gpt-9", prompt: "x" }, auth);
    assertOpenAIError(r, 404, "model");
    assert.equal(r.body.error.code, "model_not_found");
    assertOpenAIError(await postJson(`${s.url}/v1/chat/completions`, chat({ model: "other" }), auth), 404, "model");
    assert.equal((await postJson(`${s.url}/v1/chat/completions`, chat({ model: "tiny" }), auth)).status, 200);
  });

  test("unknown route -> 404 in the same shape", async () => {
    assertOpenAIError(await postJson(`${s.url}/v1/engines`, {}, auth), 404);
  });

  test("body over the limit -> 413", async () => {
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "a".repeat(100 * 1024) }, auth);
    assertOpenAIError(r, 413);
  });
});

/** A small deterministic generator so a failing fuzz case can be replayed. */
function rng(seed: number) {
  return () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("fuzz", () => {
  test("300 malformed bodies: only 4xx (or a valid 200), always OpenAI-shaped, server healthy after", async () => {
    const rand = rng(12345);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const values = (): unknown =>
      pick<unknown>([null, true, -1, 0, 1e309 as number, 3.7, 2 ** 53, "", "x", "\u0000\ud800", [], [1, "a"], [[-5]], {}, { a: { b: [] } }, "a".repeat(2000), [["x"]], { type: "json_object" }]);
    const fields = ["prompt", "messages", "model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed", "logprobs", "top_logprobs", "logit_bias", "stream", "stream_options", "echo", "repetition_penalty", "response_format", "tools", "max_completion_tokens", "presence_penalty", "stop_token_ids", "__proto__", "constructor"];
    const raw = ["", "{", "null", "[]", "\"str\"", "42", "{\"prompt\":", "{\"messages\": [{]}", "\u00ff\u00fe", "{\"a\":1}{\"b\":2}"];
    let ok = 0;
    for (let i = 0; i < 300; i++) {
      const endpoint = pick(["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"]);
      let body: string;
      if (i % 5 === 0) body = pick(raw);
      else {
        const base: Record<string, unknown> = endpoint.includes("chat") ? { messages: [{ role: "user", content: "hi" }] } : { prompt: "hi" };
        base.max_tokens = 2;
        for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) base[pick(fields)] = values();
        body = JSON.stringify(base);
      }
      const r = await postJson(`${s.url}${endpoint}`, body, auth);
      if (r.status === 200) {
        ok++;
        continue;
      }
      assert.ok(r.status >= 400 && r.status < 500, `case ${i} ${endpoint} ${body.slice(0, 200)} -> ${r.status} ${JSON.stringify(r.body)}`);
      assertOpenAIError(r, r.status);
    }
    assert.ok(ok < 300, "most fuzz cases are invalid");
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    assert.ok(await waitFor(async () => (await s.llm.stats()).running === 0), "no request left running");
    const after = await s.llm.stats();
    assert.equal(after.kvBlocksFree, after.kvBlocksTotal, "every KV block is free again");
  });
});

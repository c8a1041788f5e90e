/**
 * Streams under load: a client that disconnects aborts its request and frees its KV
 * blocks; with many concurrent clients, some leaving mid-stream, the rest still get
 * complete and correct streams.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { RunningServer } from "../../src/server/server.js";
import { postJson, postSse, startTestServer, streamAndDisconnect, streamedTexts, waitFor } from "./helpers.js";

let s: RunningServer;
before(async () => {
  s = await startTestServer({ maxSeqs: 64 });
});
after(() => s.close(1000));

const idle = async () => {
  const st = await s.llm.stats();
  return st.running === 0 && st.waiting === 0 && st.kvUsage === 0;
};

test("a client that disconnects mid-stream aborts its request and frees its KV blocks", async () => {
  for (const path of ["/v1/completions", "/v1/chat/completions"]) {
    const body = path.includes("chat")
      ? { messages: [{ role: "user", content: "tell me a long story" }], max_tokens: 400, ignore_eos: true, stream: true }
      : { prompt: "A long story: ", max_tokens: 400, ignore_eos: true, stream: true };
    const seen = await streamAndDisconnect(`${s.url}${path}`, body, 3);
    assert.ok(seen >= 3);
    const during = await s.llm.stats();
    assert.ok(await waitFor(idle), `after the disconnect the engine is idle: ${JSON.stringify(await s.llm.stats())} (was ${JSON.stringify(during)})`);
  }
  // the abort shows in the metrics as a request that did not succeed
  const m = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(m, /vllm:num_requests_running\{model_name="synthetic:tiny"\} 0/);
  assert.match(m, /vllm:kv_cache_usage_perc\{model_name="synthetic:tiny"\} 0/);
});

test("50 concurrent streams, a third disconnecting: the rest are complete and equal to running alone", async () => {
  const N = 50;
  const body = (i: number) => ({ prompt: `Prompt number ${i}: `, max_tokens: 16, temperature: 0, ignore_eos: true });
  // what each prompt gives alone (greedy is batch-invariant)
  const alone: string[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 3 === 0) continue;
    alone[i] = (await postJson(`${s.url}/v1/completions`, body(i))).body.choices[0].text;
  }
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      i % 3 === 0 ? streamAndDisconnect(`${s.url}/v1/completions`, { ...body(i), max_tokens: 300, stream: true }, 2 + (i % 5)) : postSse(`${s.url}/v1/completions`, { ...body(i), stream: true }),
    ),
  );
  for (let i = 0; i < N; i++) {
    if (i % 3 === 0) continue;
    const r = results[i] as Awaited<ReturnType<typeof postSse>>;
    assert.equal(r.status, 200);
    assert.equal(r.events.at(-1), "[DONE]");
    assert.deepEqual(streamedTexts(r.events), [alone[i]], `stream ${i}`);
    assert.ok(r.events.some((e) => e !== "[DONE]" && e.choices[0]?.finish_reason === "length"));
  }
  assert.ok(await waitFor(idle), `engine idle afterwards: ${JSON.stringify(await s.llm.stats())}`);
  const st = await s.llm.stats();
  assert.equal(st.kvBlocksFree, st.kvBlocksTotal, "the KV pool is full again");
});

test("a non-streaming client that disconnects also frees its request", async () => {
  const ac = new AbortController();
  const p = fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "x", max_tokens: 500, ignore_eos: true }),
    signal: ac.signal,
  }).catch(() => null);
  assert.ok(await waitFor(async () => (await s.llm.stats()).running > 0), "the request started");
  ac.abort();
  await p;
  assert.ok(await waitFor(idle), "aborted and freed");
});

/**
 * The server's life: /health is 503 while the model loads and 200 once ready; HTTP
 * stays responsive while the engine thread is busy with a long step; a graceful close
 * lets in-flight streams finish, refuses new work, and aborts what outlives the grace.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startServer } from "../../src/server/server.js";
import { postJson, postSse, startTestServer, streamedTexts, waitFor } from "./helpers.js";

test("/health is 503 while loading, then 200; API calls get a 503 until then", async () => {
  const s = await startServer({ model: "synthetic:tiny", port: 0 });
  try {
    const first = await fetch(`${s.url}/health`);
    assert.equal(first.status, 503, "the engine thread cannot have loaded yet");
    assert.deepEqual(await first.json(), { status: "loading" });
    const early = await postJson(`${s.url}/v1/completions`, { prompt: "x", max_tokens: 1 });
    if (early.status !== 200) {
      assert.equal(early.status, 503);
      assert.equal(early.body.error.code, "model_loading");
    }
    let status = 503;
    for (let i = 0; i < 600 && status !== 200; i++) {
      status = (await fetch(`${s.url}/health`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200);
  } finally {
    await s.close(100);
  }
});

test("HTTP answers within milliseconds while the engine runs a long step", async (t) => {
  const s = await startTestServer({ target: "reference" }); // its steps are the slow ones this needs
  try {
    // Warm up, then a 250-token prompt: its prefill is one long step on the reference backend.
    await postJson(`${s.url}/v1/completions`, { prompt: "warm up", max_tokens: 2 });
    const t0 = performance.now();
    let firstToken = 0;
    const gen = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "z".repeat(250), max_tokens: 3, stream: true, ignore_eos: true }),
    }).then(async (r) => {
      const reader = r.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!firstToken && new TextDecoder().decode(value).includes('"text"')) firstToken = performance.now() - t0;
      }
    });
    const latencies: number[] = [];
    await new Promise((r) => setTimeout(r, 20));
    while (!firstToken && latencies.length < 2000) {
      const t = performance.now();
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
      latencies.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 5));
    }
    await gen;
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length / 2)];
    const max = latencies.at(-1)!;
    const msg = `first token after ${firstToken.toFixed(0)} ms; /health x${latencies.length}: p50 ${p50.toFixed(1)} ms, max ${max.toFixed(1)} ms`;
    t.diagnostic(msg);
    assert.ok(firstToken > 150, `the engine was busy for a while (${msg})`);
    assert.ok(latencies.length >= 5, msg);
    assert.ok(p50 < 20, msg);
    assert.ok(max < Math.max(50, firstToken / 3), `no /health waited for the engine step (${msg})`);
  } finally {
    await s.close(100);
  }
});

test("graceful close: in-flight streams finish, new requests are refused", async () => {
  const s = await startTestServer();
  const url = s.url;
  const inflight = postSse(`${url}/v1/completions`, { prompt: "x", max_tokens: 30, temperature: 0, ignore_eos: true, stream: true });
  assert.ok(await waitFor(async () => (await s.llm.stats()).running > 0), "the request is in flight");
  const closed = s.close(20_000);
  const refused = await postJson(`${url}/v1/completions`, { prompt: "x", max_tokens: 1 }).catch(() => ({ status: 0, body: null }));
  assert.ok(refused.status === 503 || refused.status === 0, `new work is refused (got ${refused.status})`);
  const r = await inflight;
  assert.equal(r.events.at(-1), "[DONE]");
  assert.equal(streamedTexts(r.events)[0].length > 0, true);
  assert.ok(r.events.some((e) => e !== "[DONE]" && e.choices[0]?.finish_reason === "length"), "finished normally");
  await closed;
});

test("graceful close: streams that outlive the grace period are aborted", async () => {
  const s = await startTestServer();
  const inflight = postSse(`${s.url}/v1/completions`, { prompt: "x", max_tokens: 500, ignore_eos: true, stream: true, temperature: 0 }).catch(() => null);
  assert.ok(await waitFor(async () => (await s.llm.stats()).running > 0), "the request is in flight");
  const t = performance.now();
  await s.close(200);
  assert.ok(performance.now() - t < 5000, "close did not wait for the whole generation");
  const r = await inflight;
  if (r) assert.ok(r.events.every((e) => e === "[DONE]" || e.choices?.[0]?.finish_reason !== "length"), "cut short");
});

test("a model that fails to load: ready rejects with the reason, /health says failed, close returns", async () => {
  const s = await startServer({ model: "synthetic:no-such-preset", port: 0 });
  try {
    await assert.rejects(s.ready, /unknown synthetic model/);
    const h = await fetch(`${s.url}/health`);
    assert.equal(h.status, 503);
    assert.equal(((await h.json()) as { status: string }).status, "failed");
    const r = await postJson(`${s.url}/v1/completions`, { prompt: "x" });
    assert.equal(r.status, 503);
    assert.match(r.body.error.message, /unavailable: .*unknown synthetic model/);
  } finally {
    await s.close(100);
  }
});

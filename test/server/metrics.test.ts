/** /metrics speaks Prometheus with vLLM's names and a model_name label, and the counters move. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { RunningServer } from "../../src/server/server.js";
import { postJson, postSse, startTestServer } from "./helpers.js";

let s: RunningServer;
before(async () => {
  s = await startTestServer({ servedModelName: "metrics-model" });
});
after(() => s.close(1000));

const NAMES = [
  "vllm:num_requests_running",
  "vllm:num_requests_waiting",
  "vllm:kv_cache_usage_perc",
  "vllm:prompt_tokens_total",
  "vllm:generation_tokens_total",
  "vllm:num_preemptions_total",
  "vllm:prefix_cache_queries_total",
  "vllm:prefix_cache_hits_total",
];
const HISTOGRAMS = ["vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds"];

async function scrape(): Promise<{ text: string; value(name: string): number }> {
  const r = await fetch(`${s.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/plain/);
  const text = await r.text();
  return {
    text,
    value(name: string) {
      const m = text.match(new RegExp(`^${name}\\{model_name="metrics-model"\\} (\\S+)$`, "m"));
      assert.ok(m, `${name} is exported with model_name`);
      return Number(m[1]);
    },
  };
}

test("every metric is there before the first request", async () => {
  const m = await scrape();
  for (const n of NAMES) m.value(n);
  for (const h of HISTOGRAMS) {
    assert.match(m.text, new RegExp(`^# TYPE ${h} histogram$`, "m"));
  }
  assert.match(m.text, /^# TYPE vllm:prompt_tokens_total counter$/m);
  assert.match(m.text, /^# TYPE vllm:kv_cache_usage_perc gauge$/m);
});

test("counters and histograms move with traffic", async () => {
  const before = await scrape();
  const r = await postJson(`${s.url}/v1/completions`, { prompt: "Hello metrics", max_tokens: 7, ignore_eos: true });
  await postSse(`${s.url}/v1/chat/completions`, { messages: [{ role: "user", content: "Hello metrics" }], max_tokens: 5, ignore_eos: true, stream: true });
  // the same prompt again: its full blocks come from the prefix cache
  await postJson(`${s.url}/v1/completions`, { prompt: "Hello metrics, ".repeat(4), max_tokens: 2, ignore_eos: true });
  await postJson(`${s.url}/v1/completions`, { prompt: "Hello metrics, ".repeat(4), max_tokens: 2, ignore_eos: true });
  const after = await scrape();
  const d = (n: string) => after.value(n) - before.value(n);
  assert.ok(d("vllm:prompt_tokens_total") >= r.body.usage.prompt_tokens + 2 * 61);
  assert.ok(d("vllm:generation_tokens_total") >= 7 + 5 + 2 + 2);
  assert.ok(d("vllm:prefix_cache_queries_total") > 0, "prefix cache queries counted");
  assert.ok(d("vllm:prefix_cache_hits_total") > 0, "the repeated prompt hit the prefix cache");
  assert.equal(after.value("vllm:num_requests_running"), 0);
  assert.equal(after.value("vllm:kv_cache_usage_perc"), 0);
  for (const h of HISTOGRAMS) {
    const count = (t: string) => Number(t.match(new RegExp(`^${h}_count\\{model_name="metrics-model"\\} (\\S+)$`, "m"))?.[1] ?? 0);
    assert.ok(count(after.text) > count(before.text), `${h} observed`);
  }
  assert.match(after.text, /vllm:request_success_total\{model_name="metrics-model",finished_reason="length"\} [1-9]/);
});

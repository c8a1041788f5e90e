/**
 * `--speculative` and `--kv-dtype` reach LLM.load on the engine thread, and /metrics
 * carries vLLM's spec-decode counters plus llmrt's acceptance gauges, which move.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { verificationSteps } from "../../src/server/metrics.js";
import type { RunningServer } from "../../src/server/server.js";
import { postJson, startTestServer } from "./helpers.js";

let s: RunningServer;
before(async () => {
  s = await startTestServer({ servedModelName: "spec", speculative: "ngram,k=4,n=3", kvDtype: "f16", maxSeqLen: 512 });
});
after(() => s.close(1000));

const NAMES = [
  "vllm:spec_decode_num_drafts_total",
  "vllm:spec_decode_num_draft_tokens_total",
  "vllm:spec_decode_num_accepted_tokens_total",
  "llmrt:spec_decode_acceptance_rate",
  "llmrt:spec_decode_mean_accepted_length",
];

async function scrape(): Promise<Record<string, number>> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of NAMES) {
    const m = text.match(new RegExp(`^${name}\\{model_name="spec"\\} (\\S+)$`, "m"));
    assert.ok(m, `${name} is exported with model_name`);
    out[name] = Number(m[1]);
  }
  return out;
}

test("spec-decode metrics are there from the start and move with n-gram drafting", async () => {
  const before = await scrape();
  for (const name of NAMES) assert.equal(before[name], 0, name);
  // greedy output of a random-weight model loops, so prompt lookup finds matches
  for (const prompt of ["Hello", "the the the the the the"]) {
    const r = await postJson(`${s.url}/v1/completions`, { prompt, max_tokens: 200, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const m = await scrape();
  const stats = await s.llm.stats();
  assert.ok(m["vllm:spec_decode_num_draft_tokens_total"] > 0, JSON.stringify(m));
  assert.equal(m["vllm:spec_decode_num_draft_tokens_total"], stats.specDraftTokens);
  assert.equal(m["vllm:spec_decode_num_accepted_tokens_total"], stats.specAcceptedTokens);
  assert.ok(stats.specAcceptedTokens > 0, "some drafts were accepted");
  assert.ok(m["vllm:spec_decode_num_drafts_total"] > 0);
  assert.ok(m["vllm:spec_decode_num_drafts_total"] * 4 >= m["vllm:spec_decode_num_draft_tokens_total"], "at most k draft tokens per draft");
  assert.ok(Math.abs(m["llmrt:spec_decode_acceptance_rate"] - stats.specAcceptanceRate) < 1e-9);
  assert.ok(m["llmrt:spec_decode_mean_accepted_length"] > 1);
});

test("verification steps are derived exactly from the mean accepted length, or not at all", () => {
  for (const [accepted, steps] of [[1, 1], [7, 3], [123457, 98765], [5, 1000]]) {
    assert.equal(verificationSteps({ specAcceptedTokens: accepted, specMeanAcceptedLength: (accepted + steps) / steps }), steps);
  }
  assert.equal(verificationSteps({ specAcceptedTokens: 0, specMeanAcceptedLength: 1 }), null);
  assert.equal(verificationSteps({}), null);
});

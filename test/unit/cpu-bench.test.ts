/**
 * llmrt bench latency / throughput on the tiny synthetic model: --json puts one object
 * with the documented fields on the last stdout line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.js";

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

test("bench latency --json: prefill/decode tok/s, ms/token, effective GB/s", () => {
  const r = runCli(["bench", "latency", "--model", "synthetic:tiny", "--prompt-tokens", "16", "--gen-tokens", "4", "--runs", "1", "--threads", "1", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const j = lastJson(r.stdout);
  for (const k of ["prefill_tok_per_s", "decode_tok_per_s", "ms_per_token", "effective_gb_per_s", "peak_rss_mb"]) assert.ok(typeof j[k] === "number" && (j[k] as number) > 0, `${k}: ${j[k]}`);
  assert.equal(j.target, "cpu");
  assert.equal(j.threads, 1);
});

test("bench throughput --json: output tok/s and TTFT/TPOT/ITL percentiles", () => {
  const r = runCli(["bench", "throughput", "--model", "synthetic:tiny", "--requests", "6", "--input-len", "12,3", "--output-len", "5", "--concurrency", "3", "--threads", "1", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const j = lastJson(r.stdout);
  assert.equal(j.output_tokens, 30);
  assert.ok((j.output_tok_per_s as number) > 0 && (j.requests_per_s as number) > 0);
  for (const k of ["ttft_ms", "tpot_ms", "itl_ms"]) for (const p of ["p50", "p90", "p99"]) assert.ok(typeof (j[k] as Record<string, number>)[p] === "number", `${k}.${p}`);
});

test("bench latency and throughput --profile: milliseconds per op kind in op_ms", () => {
  for (const args of [
    ["latency", "--prompt-tokens", "16", "--gen-tokens", "2", "--runs", "1"],
    ["throughput", "--requests", "3", "--input-len", "8", "--output-len", "2", "--concurrency", "3"],
  ]) {
    const r = runCli(["bench", ...args, "--model", "synthetic:tiny", "--threads", "1", "--profile", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const ops = lastJson(r.stdout).op_ms as Record<string, number>;
    assert.ok(ops && ops.matmul > 0 && ops.attention_qkv > 0, `${args[0]}: op_ms ${JSON.stringify(ops)}`);
  }
});

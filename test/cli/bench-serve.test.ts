import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, mkdtempSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arrivalGaps, parseRate } from "../../src/cli/poisson.js";
import { startTestServer } from "../server/helpers.js";

/** Runs the CLI without blocking this process's event loop (the servers under test live in it). */
function runCliAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d));
    p.stderr.on("data", (d: Buffer) => (stderr += d));
    const kill = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.on("close", (status) => (clearTimeout(kill), resolve({ status, stdout, stderr })));
  });
}

const lastJson = (stdout: string) => JSON.parse(stdout.trimEnd().split("\n").at(-1)!);

function assertOrdered(out: any) {
  for (const k of ["ttft_ms", "tpot_ms", "itl_ms"]) {
    const { p50, p90, p99 } = out[k];
    assert.ok(Number.isFinite(p50) && p50 >= 0, `${k}.p50 = ${p50}`);
    assert.ok(p50 <= p90 && p90 <= p99, `${k} not ordered: ${JSON.stringify(out[k])}`);
  }
}

interface Stub {
  url: string;
  server: Server;
  maxInFlight: number;
  bodies: any[];
}

/**
 * A stand-in OpenAI server: each completion streams `chunks` text chunks 5 ms apart,
 * then usage (unless `usage` is false) and [DONE]; it counts requests in flight.
 * `fail(i)` picks what the i-th request (in arrival order) gets instead.
 */
async function stubServer(opts: { chunks: number; usage?: boolean; fail?: (i: number) => "500" | "reset" | "hang" | null }): Promise<Stub> {
  const stub: Stub = { url: "", server: undefined as unknown as Server, maxInFlight: 0, bodies: [] };
  let inFlight = 0;
  let arrived = 0;
  const readBody = (req: IncomingMessage) => new Promise<string>((r) => { let s = ""; req.on("data", (d) => (s += d)); req.on("end", () => r(s)); });
  stub.server = createServer(async (req, res) => {
    if (req.method === "GET" && req.url === "/v1/models") return void res.end(JSON.stringify({ object: "list", data: [{ id: "stub-model" }] }));
    if (req.url !== "/v1/completions") return void res.writeHead(404).end();
    const body = JSON.parse(await readBody(req));
    stub.bodies.push(body);
    const fate = opts.fail?.(arrived++) ?? null;
    inFlight++;
    stub.maxInFlight = Math.max(stub.maxInFlight, inFlight);
    res.on("close", () => inFlight--);
    if (fate === "500") return void res.writeHead(500).end("boom");
    res.writeHead(200, { "content-type": "text/event-stream" });
    if (fate === "hang") return;
    for (let k = 0; k < opts.chunks; k++) {
      await new Promise((r) => setTimeout(r, 5));
      if (fate === "reset" && k === 1) return void res.destroy();
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, text: "w", finish_reason: null }] })}\n\n`);
    }
    if (opts.usage !== false) res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: body.max_tokens } })}\n\n`);
    res.end("data: [DONE]\n\n");
  });
  await new Promise<void>((r) => stub.server.listen(0, "127.0.0.1", r));
  stub.url = `http://127.0.0.1:${(stub.server.address() as AddressInfo).port}`;
  return stub;
}

const close = (s: Server) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())));

test("bench serve against llmrt serve: every request completes, N x B output tokens, percentiles ordered", async () => {
  const server = await startTestServer({ maxSeqs: 4 });
  try {
    const r = await runCliAsync(["bench", "serve", "--url", server.url, "--requests", "6", "--request-rate", "50", "--max-concurrency", "3", "--input-len", "16", "--output-len", "5", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout);
    assert.equal(out.requests, 6);
    assert.equal(out.completed, 6);
    assert.equal(out.failed, 0);
    assert.equal(out.output_tokens, 6 * 5);
    assert.equal(out.model, "synthetic:tiny"); // the first id of /v1/models
    assert.ok(out.output_tok_per_s > 0 && out.requests_per_s > 0);
    assertOrdered(out);
  } finally {
    await server.close(0);
  }
});

test("bench serve keeps at most --max-concurrency requests in flight, sends B with ignore_eos, and writes a report", async () => {
  const stub = await stubServer({ chunks: 4 });
  const report = join(mkdtempSync(join(tmpdir(), "llmrt-bench-")), "serve.html");
  try {
    const r = await runCliAsync(["bench", "serve", "--url", stub.url, "--requests", "12", "--max-concurrency", "3", "--input-len", "8", "--output-len", "4", "--json", "--report", report]);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout);
    assert.equal(stub.maxInFlight, 3); // all 12 arrive at once (rate inf), so the limit is what holds them back
    assert.equal(out.completed, 12);
    assert.equal(out.failed, 0);
    assert.equal(out.output_tokens, 12 * 4);
    assert.equal(out.input_tokens, 12 * 10); // the server's usage, not the estimate
    assertOrdered(out);
    for (const b of stub.bodies) {
      assert.equal(b.model, "stub-model");
      assert.equal(b.max_tokens, 4);
      assert.equal(b.ignore_eos, true);
      assert.equal(b.stream, true);
      assert.deepEqual(b.stream_options, { include_usage: true });
      assert.equal(typeof b.prompt, "string");
    }
    const html = readFileSync(report, "utf8");
    assert.equal(html.match(/<svg/g)?.length, 3);
    assert.ok(html.includes(String(out.output_tok_per_s)), "the report shows the figures");
  } finally {
    await close(stub.server);
  }
});

test("without usage, output tokens are the chunks counted; --model overrides /v1/models", async () => {
  const stub = await stubServer({ chunks: 3, usage: false });
  try {
    const r = await runCliAsync(["bench", "serve", "--url", stub.url, "--requests", "4", "--request-rate", "100", "--output-len", "9", "--model", "mine", "--seed", "3", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout);
    assert.equal(out.output_tokens, 4 * 3);
    assert.ok(stub.bodies.every((b) => b.model === "mine"));
  } finally {
    await close(stub.server);
  }
});

test("HTTP errors, connection resets and timeouts are counted as failed, and the run ends", async () => {
  const fates = ["500", "reset", "hang"] as const;
  const stub = await stubServer({ chunks: 3, fail: (i) => fates[i] ?? null });
  try {
    const r = await runCliAsync(["bench", "serve", "--url", stub.url, "--requests", "6", "--output-len", "3", "--timeout-s", "1", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout);
    assert.equal(out.failed, 3);
    assert.equal(out.completed, 3);
    assert.equal(out.output_tokens, 3 * 3);
    assert.match(r.stderr, /3 of 6 requests failed/);
  } finally {
    await close(stub.server);
  }
});

test("a server that is not there is a one-line error naming the URL, exit code 1", async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  await close(s); // the port is now free: nothing listens there
  const r = await runCliAsync(["bench", "serve", "--url", url, "--requests", "2", "--json"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`${url}: cannot connect .*ECONNREFUSED`));
  assert.match(r.stderr, /llmrt serve/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
});

test("Poisson arrivals: exponential gaps with mean 1/rate (seeded, repeatable); inf is all at once", () => {
  const n = 20000;
  const gaps = Array.from({ length: n }, arrivalGaps(4, 123));
  const mean = gaps.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / n);
  assert.ok(Math.abs(mean - 250) < 250 * 0.03, `mean gap ${mean} ms, want 250`);
  assert.ok(Math.abs(sd / mean - 1) < 0.05, `an exponential's stdev equals its mean; got ${sd} vs ${mean}`);
  assert.ok(gaps.every((g) => g >= 0 && Number.isFinite(g)));
  assert.deepEqual(Array.from({ length: 5 }, arrivalGaps(4, 123)), gaps.slice(0, 5));
  assert.notDeepEqual(Array.from({ length: 5 }, arrivalGaps(4, 124)), gaps.slice(0, 5));
  assert.deepEqual(Array.from({ length: 3 }, arrivalGaps(Infinity, 1)), [0, 0, 0]);
  assert.equal(parseRate("inf"), Infinity);
  assert.throws(() => parseRate("0"), /--request-rate/);
  assert.throws(() => parseRate("fast"), /--request-rate/);
});

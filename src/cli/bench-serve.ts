/**
 * llmrt bench serve: the figures of `bench throughput` measured against a running
 * OpenAI-compatible server, shaped after vLLM's `vllm bench serve`. Requests arrive as a
 * seeded Poisson process (--request-rate, or all at once), at most --max-concurrency in
 * flight, each streaming (SSE) so TTFT and ITL are what a client sees.
 *
 *   llmrt bench serve --url URL [--requests 32] [--request-rate inf] [--max-concurrency C]
 *     [--input-len A[,stdev]] [--output-len B[,stdev]] [--model NAME] [--endpoint completions|chat]
 *     [--seed 0] [--timeout-s 300] [--json] [--report FILE.html]
 */
import { Option, type Command } from "commander";
import { OptionError } from "../errors.js";
import { requestCharts, commandLine, writeReport } from "./bench-report.js";
import { PROMPT_WORDS, wordPrompt, wordsFor } from "./bench-prompts.js";
import { bar, lengths, printResult, r2, rng, stats } from "./bench-stats.js";
import { intOption } from "./options.js";
import { arrivalGaps, parseRate } from "./poisson.js";
import { firstModel, streamRequest, tokensPerWord, type StreamRecord } from "./serve-client.js";

interface ServeBenchFlags {
  url: string;
  requests: number;
  requestRate: number;
  maxConcurrency?: number;
  inputLen: string;
  outputLen: string;
  model?: string;
  endpoint: "completions" | "chat";
  seed: number;
  timeoutS: number;
  json?: boolean;
  report?: string;
}

/** --url: an http(s) URL, without a trailing slash. */
function parseUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new OptionError("--url", `wants a URL such as http://127.0.0.1:8000, got "${v}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new OptionError("--url", `wants an http:// or https:// URL, got "${v}"`);
  return v.replace(/\/+$/, "");
}

/** Runs `fn` with at most `max` calls in flight; the rest wait in arrival order. */
export function limiter(max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active < max) active++;
    else await new Promise<void>((go) => waiting.push(go)); // the finishing call hands its slot over
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

async function runServeBench(f: ServeBenchFlags): Promise<void> {
  const url = parseUrl(f.url);
  const timeoutMs = f.timeoutS * 1000;
  const draw = rng(f.seed);
  const inLen = lengths(f.inputLen, "--input-len", draw);
  const outLen = lengths(f.outputLen, "--output-len", draw);
  const shapes = Array.from({ length: f.requests }, () => ({ input: inLen(), output: outLen() }));

  const model = f.model ?? (await firstModel(url, timeoutMs));
  const perWord = await tokensPerWord(url, model, PROMPT_WORDS.join(" "), timeoutMs);
  const prompts = shapes.map((s, i) => wordPrompt(wordsFor(s.input, perWord), f.seed * 7919 + i + 1));

  const run = limiter(f.maxConcurrency ?? Infinity);
  const gap = arrivalGaps(f.requestRate, f.seed + 1);
  const progress = bar("bench serve", f.requests, !!f.json);
  let finished = 0;
  const pending: Promise<StreamRecord>[] = [];
  const t0 = performance.now();
  let due = t0; // arrivals on an absolute schedule, so timer slack does not add up
  for (let i = 0; i < f.requests; i++) {
    if (i > 0) due += gap();
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const q = { url, endpoint: f.endpoint, model, prompt: prompts[i], maxTokens: shapes[i].output, timeoutMs };
    pending.push(run(() => streamRequest(q)).then((rec) => (progress.update(++finished), rec)));
  }
  const recs = await Promise.all(pending);
  const wallS = (performance.now() - t0) / 1000;
  progress.stop();

  const ok = recs.filter((r) => r.error === null);
  const failed = recs.filter((r) => r.error !== null);
  if (failed.length > 0) console.error(`llmrt bench serve: ${failed.length} of ${recs.length} requests failed; the first: ${failed[0].error}`);
  const outTokens = ok.reduce((n, r) => n + r.outputTokens, 0);
  const timed = ok.filter((r) => r.chunks.length > 0);
  const ttft = timed.map((r) => r.chunks[0] - r.sent);
  const itl = timed.flatMap((r) => r.chunks.slice(1).map((t, k) => t - r.chunks[k]));
  const summary = {
    url,
    model,
    endpoint: f.endpoint,
    requests: f.requests,
    completed: ok.length,
    failed: failed.length,
    request_rate: f.requestRate === Infinity ? "inf" : f.requestRate,
    max_concurrency: f.maxConcurrency ?? null,
    // the server's count when it sends usage, else the tokens asked for
    input_tokens: recs.reduce((n, r, i) => (r.error === null ? n + (r.promptTokens ?? shapes[i].input) : n), 0),
    output_tokens: outTokens,
    duration_s: r2(wallS),
    output_tok_per_s: r2(outTokens / wallS),
    requests_per_s: r2(ok.length / wallS),
    ttft_ms: stats(ttft),
    tpot_ms: stats(timed.filter((r) => r.outputTokens > 1).map((r) => (r.chunks[r.chunks.length - 1] - r.chunks[0]) / (r.outputTokens - 1))),
    itl_ms: stats(itl),
  };
  if (f.report) {
    // tokens of a request spread evenly over its chunks (a chunk may carry several)
    const tokens = timed.flatMap((r) => r.chunks.map((t) => ({ t: (t - t0) / 1000, n: r.outputTokens / r.chunks.length })));
    writeReport(f.report, { title: "llmrt bench serve", command: commandLine(), summary, charts: requestCharts({ ttftMs: ttft, itlMs: itl, tokens, wallS }) });
  }
  printResult(summary, f.json);
}

export function registerBenchServe(bench: Command): void {
  bench
    .command("serve")
    .description("output tokens/s and TTFT/TPOT/ITL percentiles of streaming requests against a running OpenAI-compatible server")
    .requiredOption("--url <url>", "the server, e.g. http://127.0.0.1:8000")
    .option("--requests <n>", "number of requests", intOption("--requests", 1), 32)
    .option("--request-rate <r>", "requests per second, Poisson arrivals (inf: all at once)", parseRate, Infinity)
    .option("--max-concurrency <n>", "at most this many requests in flight; the rest wait (default: no limit)", intOption("--max-concurrency", 1))
    .option("--input-len <len[,stdev]>", "prompt tokens per request (words from a fixed list, scaled by the server's /tokenize)", "128")
    .option("--output-len <len[,stdev]>", "output tokens per request (max_tokens with ignore_eos)", "128")
    .option("--model <name>", "the request's model field (default: the first id of GET /v1/models)")
    .addOption(new Option("--endpoint <kind>", "which API to call").choices(["completions", "chat"]).default("completions"))
    .option("--seed <n>", "seeds prompts, lengths and arrivals", intOption("--seed", 0), 0)
    .option("--timeout-s <s>", "a request still running after this long is counted as failed", intOption("--timeout-s", 1), 300)
    .option("--json", "print one JSON object as the last stdout line")
    .option("--report <file.html>", "also write a self-contained HTML report with charts")
    .action(async (f: ServeBenchFlags) => runServeBench(f));
}

/**
 * Load test of `llmrt serve` on loopback: C concurrent streaming clients, each sending
 * requests back to back; TTFT / ITL medians, output tokens/s, and /health latency while
 * loaded. The same load through the in-process LLM API gives the baseline the server
 * is compared with. The server runs as a child process (`llmrt serve`), as users run it.
 * Each level runs `--repeats` times, server and in-process alternating; tokens/s are
 * medians over the repeats, TTFT / ITL / health medians over every sample.
 *   npx tsx bench/server-load.ts [--model synthetic:tiny] [--concurrency 1,4,16,32] [--requests 4] [--tokens 64] [--repeats 3]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { LLM } from "../src/api/llm.js";
import { machineLine, median } from "./machine.js";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const model = arg("--model", "synthetic:tiny");
const levels = arg("--concurrency", "1,4,16,32").split(",").map(Number);
const perClient = Number(arg("--requests", "4"));
const repeats = Number(arg("--repeats", "3"));
const tokens = Number(arg("--tokens", "64"));
const maxSeqs = Math.max(...levels);
const prompt = (i: number) => `Request ${i}: once upon a time there was`;

console.log(`command: npx tsx bench/server-load.ts --model ${model} --concurrency ${levels.join(",")} --requests ${perClient} --tokens ${tokens} --repeats ${repeats}`);
console.log(`machine: ${machineLine()}`);
const load0 = loadavg()[0];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))];
};

async function startServe(): Promise<{ url: string; proc: ChildProcess }> {
  const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
  const proc = spawn(process.execPath, ["--import", "tsx", main, "serve", "--model", model, "--port", "0", "--max-seqs", String(maxSeqs)], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    proc.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /listening on (\S+)/.exec(log);
      if (m && /ready in/.test(log)) resolve({ url: m[1], proc });
    });
    proc.on("exit", (code) => reject(new Error(`llmrt serve exited (${code}): ${log}`)));
  });
}

interface Sample {
  ttft: number;
  itls: number[];
  tokens: number;
}

/** One streaming request; TTFT and the gaps between content chunks, in ms. */
async function streamOnce(url: string, i: number): Promise<Sample> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: prompt(i), max_tokens: tokens, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let last = 0;
  const s: Sample = { ttft: NaN, itls: [], tokens: 0 };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const data = buf.slice(6, k);
      buf = buf.slice(k + 2);
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.usage) s.tokens = chunk.usage.completion_tokens;
      if (!chunk.choices[0]?.text) continue;
      const now = performance.now();
      if (last === 0) s.ttft = now - t0;
      else s.itls.push(now - last);
      last = now;
    }
  }
  return s;
}

async function inProcessOnce(llm: LLM, i: number): Promise<Sample> {
  const t0 = performance.now();
  let last = 0;
  const s: Sample = { ttft: NaN, itls: [], tokens: 0 };
  for await (const o of llm.generateStream(prompt(i), { maxTokens: tokens, temperature: 0, ignoreEos: true })) {
    const now = performance.now();
    if (last === 0) s.ttft = now - t0;
    else s.itls.push(now - last);
    last = now;
    s.tokens = o.outputs[0].tokenIds.length;
  }
  return s;
}

/** C clients, each running `perClient` requests back to back. */
async function load(c: number, once: (i: number) => Promise<Sample>): Promise<{ samples: Sample[]; wall: number }> {
  const samples: Sample[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async (_, k) => {
      for (let j = 0; j < perClient; j++) samples.push(await once(k * perClient + j));
    }),
  );
  return { samples, wall: (performance.now() - t0) / 1000 };
}

/** /health round trips every 10 ms until `until` settles. */
async function probeHealth(url: string, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.finally(() => (done = true));
  const lat: number[] = [];
  while (!done) {
    const t = performance.now();
    await fetch(`${url}/health`);
    lat.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 10));
  }
  return lat;
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const rows: string[] = [];

const { url, proc } = await startServe();
const llm = await LLM.load(model, { maxSeqs });
try {
  await load(2, (i) => streamOnce(url, i)); // warm both paths (JIT, first steps)
  await load(2, (i) => inProcessOnce(llm, i));
  for (const c of levels) {
    const srv: Sample[] = [];
    const health: number[] = [];
    const srvTps: number[] = [];
    const inpTps: number[] = [];
    const tps = (r: { samples: Sample[]; wall: number }) => r.samples.reduce((n, s) => n + s.tokens, 0) / r.wall;
    for (let k = 0; k < repeats; k++) {
      const run = load(c, (i) => streamOnce(url, i));
      health.push(...(await probeHealth(url, run)));
      const r = await run;
      srv.push(...r.samples);
      srvTps.push(tps(r));
      inpTps.push(tps(await load(c, (i) => inProcessOnce(llm, i))));
    }
    const ttft = median(srv.map((s) => s.ttft));
    const itl = median(srv.flatMap((s) => s.itls));
    const [a, b] = [median(srvTps), median(inpTps)];
    rows.push(`| ${c} | ${srv.length} | ${fmt(ttft)} | ${fmt(itl, 2)} | ${fmt(a, 0)} | ${fmt(b, 0)} | ${fmt((100 * a) / b, 0)}% | ${fmt(median(health), 1)} / ${fmt(pct(health, 0.99), 1)} |`);
    console.error(rows.at(-1));
  }
} finally {
  llm.close();
  proc.kill("SIGTERM");
}

console.log(`\nmodel ${model}, ${tokens} output tokens per request (greedy, ignore_eos), ${perClient} requests per client back to back, ${repeats} repeats; times in ms; load average ${load0.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end\n`);
console.log("| clients | requests | TTFT p50 | ITL p50 | server tok/s | in-process tok/s | server / in-process | /health p50 / p99 |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) console.log(r);

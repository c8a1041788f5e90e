/**
 * Serving throughput (issue 4): aggregate output tokens/s and time to first token with
 * 1, 4, 16, 64 concurrent requests, llmrt's LLM API (in-flight batching) against
 * llama.cpp's parallel sequences (node-llama-cpp) on the same random-weight
 * Llama-110M-shape F32 GGUF, in the same run.
 *
 *   npx tsx bench/serving-throughput.ts [--quick] [--target cpu|reference] [--levels 1,4,16,64] [--prompt-tokens N]
 *                                       [--output-tokens N] [--no-write]
 *
 * Every request of a level is submitted at the same instant with its own prompt (no
 * shared prefixes: llmrt's prefix cache gets no free hits); greedy decoding, end of
 * sequence ignored, so every request yields exactly --output-tokens tokens.
 *   throughput = all output tokens of the level / seconds from submission to the last token
 *   TTFT       = seconds from submission to a request's first token (median over requests)
 * A full run writes its table into bench/RESULTS.md under "Serving throughput (issue 4)".
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Token } from "node-llama-cpp";
import { LLM } from "../src/api/llm.js";
import { writeModelGguf } from "../src/checkpoint/write-gguf-model.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../src/models/synthetic.js";
import { machineLine, median } from "./machine.js";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = flag("--quick");
// The reference backend does a few prompt tokens/s on this shape (one thread), so the
// full run uses shorter prompts and outputs than the ~32/32 of issue 4 to stay near 10
// minutes: 64 requests x 32 prompt tokens alone would take llmrt over 10 minutes to prefill.
const DEFAULTS = quick ? { levels: [1, 4, 16], prompt: 4, output: 4 } : { levels: [1, 4, 16, 64], prompt: 8, output: 8 };
const levels = value("--levels")?.split(",").map(Number) ?? DEFAULTS.levels;
const promptTokens = Number(value("--prompt-tokens") ?? DEFAULTS.prompt);
const outputTokens = Number(value("--output-tokens") ?? DEFAULTS.output);
const write = !quick && !flag("--no-write");
/**
 * llama.cpp thread counts to run. 1 is like for like with llmrt's single-threaded reference
 * backend; 2 uses both cores, but ggml's threads spin at barriers, so on a busy machine
 * 2 threads can be many times slower than 1: both are shown.
 */
const cppThreads = (value("--llamacpp-threads") ?? "1,2").split(",").map(Number);
const target = value("--target") ?? "cpu";
/**
 * A llama.cpp level takes seconds, so it runs up to 3 times within ~60 s (median by
 * throughput) to damp noise; after a level slower than that, the bigger ones are skipped.
 */
const CPP_REPEATS = 3;
const CPP_LEVEL_BUDGET_S = 60;
if (levels.some((n) => !Number.isInteger(n) || n < 1) || !(promptTokens >= 2) || !(outputTokens >= 2)) {
  throw new Error("usage: --levels 1,4,16,64 --prompt-tokens N (>= 2) --output-tokens N (>= 2)");
}

const command = `npx tsx bench/serving-throughput.ts ${args.join(" ")}`.trim();
const machine = machineLine();
const log = (s: string) => console.log(s);
log(`command: ${command}`);
log(`machine: ${machine}`);
log(`date: ${new Date().toISOString()}`);
// other processes on a small machine skew both engines (llama.cpp's spinning threads most): say how busy it was
const load = () => loadavg().map((x) => x.toFixed(1)).join(" / ");
const loadBefore = load();
log(`load average (1/5/15 min) before: ${loadBefore}`);
log(`workload: levels ${levels.join(", ")}; ${promptTokens} prompt tokens + ${outputTokens} output tokens per request, greedy, EOS ignored` +
  (quick ? " (--quick)" : ` (reduced from issue 4's ~32 + ~32 to fit ~10 minutes on this machine)`));

const V = 32000;
/** Request i of level n: BOS, then ids unique to (n, i), so no two prompts share a prefix. */
function prompt(n: number, i: number): number[] {
  const ids = [1];
  let s = (Math.imul(n, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  for (let k = 1; k < promptTokens; k++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids.push(3 + (s % (V - 3)));
  }
  return ids;
}

interface LevelResult {
  n: number;
  tokensPerS: number;
  ttftS: number;
  wallS: number;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

// --- the model ---------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), "llmrt-serving-bench-"));
const gguf = join(dir, "llama-110m-random.gguf");
const config = syntheticConfig({ ...SYNTHETIC_PRESETS["llama-110m"], maxPositionEmbeddings: 1024 });
let t0 = performance.now();
writeModelGguf(gguf, config, syntheticCheckpoint(config, 0), { dtype: "f32", name: "llama-110m random weights" });
log(`model: Llama-110M shape (hidden ${config.hiddenSize}, ${config.numLayers} layers, ${config.numHeads} heads, vocab ${config.vocabSize}), ` +
  `random weights, F32 GGUF ${(statSync(gguf).size / 2 ** 20).toFixed(0)} MiB, written in ${seconds(t0).toFixed(1)} s`);

/** An engine under test: set up once, then measured one level at a time. */
interface Peer {
  /** null: the level was skipped. */
  level(n: number): Promise<LevelResult | null>;
  close(): Promise<void>;
}

async function llmrtPeer(): Promise<Peer> {
  const t = performance.now();
  const maxSeqs = Math.max(...levels);
  const llm = await LLM.load(gguf, { maxSeqs, maxSeqLen: promptTokens + outputTokens + 16, engineCache: join(dir, "engines"), build: { target } });
  log(`llmrt: engine built and loaded in ${seconds(t).toFixed(1)} s (${target} backend, maxSeqs ${maxSeqs})`);
  await llm.generate({ promptTokenIds: [1, 5, 6] }, { temperature: 0, maxTokens: 2, ignoreEos: true }); // JIT warm-up
  return {
    async level(n) {
      const start = performance.now();
      const ttfts: number[] = [];
      let tokens = 0;
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          let first = true;
          for await (const o of llm.generateStream({ promptTokenIds: prompt(n, i) }, { temperature: 0, maxTokens: outputTokens, ignoreEos: true })) {
            const got = o.outputs[0].tokenIds.length;
            if (first && got > 0) ttfts.push(seconds(start)), (first = false);
            if (o.finished) tokens += got;
          }
        }),
      );
      const r = { n, wallS: seconds(start), tokensPerS: tokens / seconds(start), ttftS: median(ttfts) };
      if (tokens !== n * outputTokens) throw new Error(`llmrt produced ${tokens} tokens, expected ${n * outputTokens}`);
      log(`llmrt        n=${String(n).padStart(2)}: ${r.tokensPerS.toFixed(2)} tok/s, median TTFT ${r.ttftS.toFixed(2)} s, wall ${r.wallS.toFixed(1)} s; load ${load()}`);
      return r;
    },
    async close() {
      llm.close();
    },
  };
}

type LlamaModel = Awaited<ReturnType<Awaited<ReturnType<typeof import("node-llama-cpp").getLlama>>["loadModel"]>>;

function llamaCppPeer(model: LlamaModel, threads: number): Peer {
  const contextSize = promptTokens + outputTokens + 16; // per sequence
  const generate = async (seq: { evaluate: (t: Token[], o: object) => AsyncGenerator<Token> }, ids: number[], onFirst: () => void) => {
    let got = 0;
    for await (const _ of seq.evaluate(ids as Token[], { temperature: 0, yieldEogToken: true })) {
      if (got++ === 0) onFirst();
      if (got >= outputTokens) break;
    }
    return got;
  };
  const once = async (n: number): Promise<LevelResult> => {
    const ctx = await model.createContext({ contextSize, sequences: n, threads });
    try {
      const seqs = Array.from({ length: n }, () => ctx.getSequence());
      const start = performance.now();
      const ttfts: number[] = [];
      const counts = await Promise.all(seqs.map((s, i) => generate(s, prompt(n, i), () => ttfts.push(seconds(start)))));
      const tokens = counts.reduce((a, b) => a + b, 0);
      if (tokens !== n * outputTokens) throw new Error(`llama.cpp produced ${tokens} tokens, expected ${n * outputTokens}`);
      return { n, wallS: seconds(start), tokensPerS: tokens / seconds(start), ttftS: median(ttfts) };
    } finally {
      await ctx.dispose();
    }
  };
  let warm = false;
  let tooSlow = false;
  return {
    async level(n) {
      const name = `llama.cpp ${threads}T n=${String(n).padStart(2)}`;
      if (tooSlow) {
        // bigger levels take longer still: keep the whole run bounded
        log(`${name}: skipped (a smaller level took over ${CPP_LEVEL_BUDGET_S} s)`);
        return null;
      }
      if (!warm) await once(1), (warm = true);
      const runs: LevelResult[] = [];
      const levelStart = performance.now();
      while (runs.length < CPP_REPEATS && (runs.length === 0 || seconds(levelStart) < CPP_LEVEL_BUDGET_S)) runs.push(await once(n));
      const r = runs.sort((a, b) => a.tokensPerS - b.tokensPerS)[runs.length >> 1];
      tooSlow = r.wallS > CPP_LEVEL_BUDGET_S;
      log(`${name}: ${r.tokensPerS.toFixed(2)} tok/s, median TTFT ${r.ttftS.toFixed(3)} s, wall ${r.wallS.toFixed(1)} s` +
        ` (median of ${runs.length} runs: ${runs.map((x) => x.tokensPerS.toFixed(1)).join(", ")} tok/s); load ${load()}`);
      return r;
    },
    async close() {},
  };
}

try {
  const f = (x: number, d: number) => x.toFixed(d);
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  log(`llama.cpp: node-llama-cpp 3.21.1 CPU prebuilt; ${cppThreads.join(" and ")} thread(s); one context with N sequences; default (F16) KV cache`);
  const cppPeers = cppThreads.map((th) => llamaCppPeer(model, th));
  const ourPeer = await llmrtPeer();
  // levels in turn, every engine within a level back to back: all see the same machine load
  t0 = performance.now();
  const cpp: (LevelResult | null)[][] = cppThreads.map(() => []);
  const ours: LevelResult[] = [];
  try {
    for (const n of levels) {
      for (const [k, peer] of cppPeers.entries()) cpp[k].push(await peer.level(n));
      ours.push((await ourPeer.level(n))!);
    }
  } finally {
    await ourPeer.close();
    await model.dispose();
  }
  const total = seconds(t0);

  const like = cppThreads.indexOf(1) >= 0 ? cppThreads.indexOf(1) : 0; // the like-for-like peer for the ratios
  const lines = [
    `| concurrent requests | llmrt tok/s | ${cppThreads.map((th) => `llama.cpp ${th}T tok/s`).join(" | ")} | llmrt / llama.cpp ${cppThreads[like]}T | llmrt scaling vs 1 request | llmrt TTFT (s) | ${cppThreads.map((th) => `llama.cpp ${th}T TTFT (s)`).join(" | ")} | TTFT llmrt / llama.cpp ${cppThreads[like]}T |`,
    `|${"---:|".repeat(6 + 2 * cppThreads.length)}`,
    ...ours.map((o, i) => {
      const c = cpp[like][i];
      const num = (r: LevelResult | null, key: "tokensPerS" | "ttftS", d: number) => (r ? f(r[key], d) : "skipped");
      const ratio = (x: number, y: number | undefined, d: number) => (y === undefined ? "n/a" : f(x / y, d));
      return `| ${o.n} | ${f(o.tokensPerS, 2)} | ${cpp.map((r) => num(r[i], "tokensPerS", 1)).join(" | ")} | ${ratio(o.tokensPerS, c?.tokensPerS, 4)} | ${f(o.tokensPerS / ours[0].tokensPerS, 2)}x | ${f(o.ttftS, 2)} | ${cpp.map((r) => num(r[i], "ttftS", 3)).join(" | ")} | ${ratio(o.ttftS, c?.ttftS, 0)} |`;
    }),
  ];
  log("");
  lines.forEach((l) => log(l));
  const loadAfter = load();
  log(`\ntotal measured time ${total.toFixed(0)} s; load average before ${loadBefore}, after ${loadAfter}`);

  if (write) {
    const results = join(dirname(fileURLToPath(import.meta.url)), "RESULTS.md");
    const heading = "## Serving throughput (issue 4)";
    const section = [
      heading,
      "",
      `- command: \`${command}\``,
      `- machine: ${machine}`,
      `- date: ${new Date().toISOString()}; load average (1/5/15 min) before ${loadBefore}, after ${loadAfter}`,
      `- model: Llama-110M shape (hidden ${config.hiddenSize}, ${config.numLayers} layers, vocab ${config.vocabSize}), random weights, F32 GGUF written by llmrt; the same file for both`,
      `- workload: all requests of a level submitted at once, ${promptTokens} prompt tokens (distinct per request) + ${outputTokens} output tokens each, greedy, EOS ignored` +
        " (issue 4 asks for ~32 + ~32; reduced so the run fits ~10 minutes on 2 cores with llmrt's reference backend)",
      `- llmrt: \`LLM.load(gguf, {maxSeqs: 64, build: {target: "${target}"}})\`, concurrent \`generateStream\` calls, ${target === "cpu" ? "cpu backend (WebAssembly SIMD kernels, all cores)" : "reference backend (plain TypeScript, single thread)"}, F32 KV cache`,
      `- llama.cpp: node-llama-cpp 3.21.1 prebuilt CPU binaries, one context with N sequences evaluated concurrently, ${cppThreads.join(" and ")} thread(s) (1 is like for like with llmrt's one thread), default F16 KV cache; each level run up to ${CPP_REPEATS} times within ${CPP_LEVEL_BUDGET_S} s, the median run by throughput shown; once a level takes over ${CPP_LEVEL_BUDGET_S} s the bigger levels of that thread count are skipped`,
      "- throughput: output tokens / seconds from submission to last token; TTFT: median seconds from submission to a request's first token",
      "",
      ...lines,
      "",
      "Reading: llmrt's reference backend is a scalar single-threaded loop, compute-bound even for one sequence, so in-flight" +
        " batching only amortizes per-step costs and throughput grows little with concurrency (scaling column); TTFT grows with" +
        " concurrency because the prompts of all waiting requests are prefilled in the same steps before any first token." +
        " On a busy 2-core machine (see the load average) llama.cpp's 2 threads spend their time spinning at barriers, so its" +
        " 1-thread column is the fair peer.",
      "",
    ].join("\n");
    const old = existsSync(results) ? readFileSync(results, "utf8") : "# Benchmark results\n\nEach section: command, machine, date, and llmrt side by side with its peer in the same run.\n";
    const start = old.indexOf(heading);
    let next;
    if (start >= 0) {
      const after = old.indexOf("\n## ", start + heading.length);
      next = old.slice(0, start) + section + (after >= 0 ? "\n" + old.slice(after + 1) : "");
    } else {
      next = old.replace(/\n*$/, "\n\n") + section;
    }
    writeFileSync(results, next);
    log(`wrote ${results}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Tensor and pipeline parallelism on this machine: one rank against TP=2, PP=2 and
 * TP=2 x PP=2 (ranks are threads running the reference backend), for decode (one
 * sequence: ms per token) and throughput (a batch in flight: output tok/s), with the
 * time each rank spends in collectives per step (microseconds, from the ranks' own
 * counters), and a micro-benchmark of one all-reduce / one pipeline hand-off by size.
 * Then the CPU backend: one rank on 2 threads against TP=2, PP=2 and TP=2 x PP=2 engines
 * built for --target cpu sharing the same 2-thread budget (threads per rank = 2 / ranks,
 * at least 1), whose step programs are split at each collective.
 *
 *   node --import tsx bench/parallel.ts [--model synthetic] [--tokens 32] [--batch 8] [--runs 3] [--only cpu|reference] [--json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { LLM } from "../src/api/llm.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { Checkpoint } from "../src/checkpoint/types.js";
import { buildEngineDir } from "../src/engine/build.js";
import { syntheticCheckpoint, syntheticConfig } from "../src/models/synthetic.js";
import { buildShardedEngineDir } from "../src/parallel/build.js";
import { ShardedEngine } from "../src/parallel/sharded-engine.js";
import { workerBoot } from "../src/parallel/spawn.js";
import { allocWorld, WorldMap } from "../src/parallel/world.js";

const { values: args } = parseArgs({
  options: {
    model: { type: "string", default: "synthetic" },
    tokens: { type: "string", default: "32" },
    batch: { type: "string", default: "8" },
    runs: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
    only: { type: "string" },
  },
});
const TOKENS = Number(args.tokens);
const BATCH = Number(args.batch);
const RUNS = Number(args.runs);

/** A random-weight Llama big enough that compute, not bookkeeping, fills a step (~26M parameters). */
function checkpoint(): Checkpoint {
  if (args.model !== "synthetic") return openCheckpoint(args.model);
  return syntheticCheckpoint(syntheticConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 4, vocabSize: 4096, maxPositionEmbeddings: 512 }), 1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows: Record<string, string | number>[] = [];
const report = (r: Record<string, string | number>) => {
  rows.push(r);
  if (!args.json) console.log(Object.entries(r).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(2) : v}`).join("  "));
};

const PROMPT = Array.from({ length: 24 }, (_, i) => 1 + ((i * 37) % 90));

async function engineRow(name: string, dir: string, threads?: number): Promise<void> {
  if (threads) process.env.LLMRT_THREADS = String(threads);
  const llm = await LLM.load(dir, { maxSeqs: BATCH, maxBatchTokens: 256 });
  const engine = llm.core.engine;
  const sharded = engine instanceof ShardedEngine ? engine : null;
  const comm = () => sharded?.rankStats().map((s) => ({ us: s.allReduceUs + s.allGatherUs + s.sendUs + s.recvUs, calls: s.calls, steps: s.steps })) ?? [];
  try {
    const params = { temperature: 0, maxTokens: TOKENS, ignoreEos: true };
    await llm.generate({ promptTokenIds: PROMPT }, { ...params, maxTokens: 4 }); // warm-up (JIT, caches)
    const decode: number[] = [];
    const tput: number[] = [];
    let commPerStep = 0;
    let callsPerStep = 0;
    const decodeComm: number[] = [];
    // mean over ranks of the time inside collectives per engine step (waiting on the slowest peer included)
    const commSince = (before: ReturnType<typeof comm>, steps: number) => comm().reduce((n, a, i) => n + (a.us - before[i].us), 0) / Math.max(1, before.length) / steps;
    for (let r = 0; r < RUNS; r++) {
      const decodeBefore = comm();
      const decodeSteps = llm.stats().steps;
      const [one] = await llm.generate({ promptTokenIds: PROMPT }, params);
      decode.push(((one.metrics.e2eLatency! - one.metrics.timeToFirstToken!) * 1000) / (TOKENS - 1));
      decodeComm.push(commSince(decodeBefore, llm.stats().steps - decodeSteps)); // one prefill step among TOKENS
      const before = comm();
      const stepsBefore = llm.stats().steps;
      const t0 = performance.now();
      await llm.generate(Array.from({ length: BATCH }, (_, i) => ({ promptTokenIds: [...PROMPT.slice(0, 8 + i), 3 + i] })), params);
      tput.push((BATCH * TOKENS) / ((performance.now() - t0) / 1000));
      const after = comm();
      const steps = llm.stats().steps - stepsBefore;
      if (after.length) {
        commPerStep = commSince(before, steps);
        callsPerStep = (after[0].calls - before[0].calls) / steps;
      }
    }
    report({ engine: name, decode_ms_per_token: median(decode), decode_tok_s: 1000 / median(decode), decode_comm_us_per_step: median(decodeComm), batch_tok_s: median(tput), comm_us_per_step: commPerStep, collectives_per_step: callsPerStep });
  } finally {
    llm.close();
    sharded?.close();
    delete process.env.LLMRT_THREADS;
  }
}

/** Median microseconds of one all-reduce (tp 2) or one pipeline hand-off (pp 2) of n floats. */
async function collectiveRow(tp: number, pp: number, sizes: number[]): Promise<void> {
  const layout = { tp, pp, maxCollective: Math.max(...sizes), maxMessage: Math.max(...sizes), logitFloats: 1, stepWords: 16 };
  const buffers = allocWorld(new WorldMap(layout));
  const boot = await workerBoot(new URL("./parallel-comm-worker.ts", import.meta.url));
  const results = await Promise.all(
    Array.from({ length: tp * pp }, (_, rank) => new Promise<Record<string, number>>((resolve, reject) => {
      const w = new Worker(boot, { eval: true, workerData: { rank, layout, buffers, sizes, iters: 2000 } });
      w.once("message", (m) => (resolve(m), void w.terminate()));
      w.once("error", reject);
    })),
  );
  for (const n of sizes) report({ collective: tp > 1 ? "all-reduce tp 2" : "send/recv pp 2", floats: n, bytes: n * 4, us: Math.max(...results.map((r) => r[n])) });
}

const tmp = mkdtempSync(join(tmpdir(), "llmrt-bench-parallel-"));
try {
  const ckpt = checkpoint();
  const c = ckpt.config;
  const build = { maxSeqs: BATCH, maxBatchTokens: 256, maxLogitRows: 256, maxSeqLen: 256 };
  if (!args.json) console.log(`model ${args.model}: hidden ${c.hiddenSize}, ${c.numLayers} layers, heads ${c.numHeads}/${c.numKvHeads}, ffn ${c.intermediateSize}, vocab ${c.vocabSize}; ${TOKENS} tokens, batch ${BATCH}, ${RUNS} runs; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const splits = [[2, 1], [1, 2], [2, 2]] as const;
  const name = (tp: number, pp: number) => (pp === 1 ? `TP=${tp}` : tp === 1 ? `PP=${pp}` : `TP=${tp} x PP=${pp}`);
  if (args.only !== "cpu") {
    buildEngineDir(ckpt, join(tmp, "single"), build);
    for (const [tp, pp] of splits) buildShardedEngineDir(ckpt, join(tmp, `tp${tp}pp${pp}`), { tp, pp }, build);
  }
  if (args.only !== "reference") {
    buildEngineDir(ckpt, join(tmp, "cpu"), { ...build, target: "cpu" });
    for (const [tp, pp] of splits) buildShardedEngineDir(ckpt, join(tmp, `cpu-tp${tp}pp${pp}`), { tp, pp }, { ...build, target: "cpu" });
  }
  ckpt.close();
  if (args.only !== "cpu") {
    await engineRow("reference, 1 rank", join(tmp, "single"));
    for (const [tp, pp] of splits) await engineRow(`reference, ${name(tp, pp)}`, join(tmp, `tp${tp}pp${pp}`));
  }
  if (args.only !== "reference") {
    await engineRow("cpu backend, 1 rank, 2 threads", join(tmp, "cpu"), 2);
    for (const [tp, pp] of splits) await engineRow(`cpu backend, ${name(tp, pp)}, ${Math.max(1, Math.floor(2 / (tp * pp)))} thread a rank`, join(tmp, `cpu-tp${tp}pp${pp}`), 2);
  }
  const sizes = [c.hiddenSize, 8 * c.hiddenSize, 64 * c.hiddenSize];
  await collectiveRow(2, 1, sizes);
  await collectiveRow(1, 2, sizes);
  if (args.json) console.log(JSON.stringify({ loadavg: loadavg(), rows }, null, 1));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Pipeline stages' busy and idle time per step (issue 10): a --pp 2 engine on the cpu
 * target (one thread a stage, the 2-thread budget), serving 1, 4 and 16 sequences in
 * flight through LLM (in-flight batching, paged KV), for each micro-batch count asked.
 * Per step: the wall time of the step, each stage's busy time (computing: its step less
 * hand-off waits) and idle time within the step (wall - busy: bubble and hand-offs), and
 * the host time between steps (scheduling, sampling: every stage idles then).
 * --depth: steps in flight at once (1: one step at a time through both stages; 2: the
 * runtime keeps two step groups in flight, stage 0 on one while stage 1 runs the other);
 * each listed value is a row, so "1,2,1,2" alternates them. Idle over the run
 * (s*_run_idle_pct = 1 - busy / run time) compares depths fairly: with one step at a
 * time, the host time between steps is idle too.
 *
 *   node --import tsx bench/pipeline.ts [--seqs 1,4,16] [--micro auto,1,2] [--depth 2] [--tokens 16] [--prompt-tokens 8] [--runs 2]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LLM } from "../src/api/llm.js";
import { syntheticCheckpoint, syntheticConfig } from "../src/models/synthetic.js";
import { buildShardedEngineDir } from "../src/parallel/build.js";
import { MICRO_BATCHES_ENV, PIPELINE_DEPTH_ENV, ShardedEngine } from "../src/parallel/sharded-engine.js";
import { stageTimesSince } from "../src/parallel/stage-times.js";

const { values: args } = parseArgs({
  options: {
    seqs: { type: "string", default: "1,4,16" },
    micro: { type: "string", default: "auto,1,2" },
    depth: { type: "string", default: "2" },
    tokens: { type: "string", default: "16" },
    runs: { type: "string", default: "2" },
    "prompt-tokens": { type: "string", default: "8" },
  },
});
const TOKENS = Number(args.tokens);
const RUNS = Number(args.runs);
const PROMPT = Number(args["prompt-tokens"]);
const list = (s: string) => s.split(",").map((x) => x.trim());

const ms = (us: number) => +(us / 1000).toFixed(2);

async function row(dir: string, seqs: number, micro: string, depth: string): Promise<void> {
  if (micro === "auto") delete process.env[MICRO_BATCHES_ENV];
  else process.env[MICRO_BATCHES_ENV] = micro;
  process.env[PIPELINE_DEPTH_ENV] = depth;
  process.env.LLMRT_THREADS = "2";
  const llm = await LLM.load(dir, { maxSeqs: 16, maxBatchTokens: 256 });
  const engine = llm.core.engine as ShardedEngine;
  try {
    // prompts new to every run (prefix caching would skip a repeated prompt's prefill)
    const prompts = (run: number) => Array.from({ length: seqs }, (_, i) => ({ promptTokenIds: [2 + run, 3 + i, ...Array.from({ length: PROMPT + (i % 5) }, (_, k) => 1 + ((k * 37 + i * 11) % 90))] }));
    const params = { temperature: 0, maxTokens: TOKENS, ignoreEos: true };
    await llm.generate(prompts(RUNS).slice(0, 2), { ...params, maxTokens: 4 }); // warm-up
    const results = [];
    for (let r = 0; r < RUNS; r++) {
      const before = engine.stageTimes();
      const t0 = performance.now();
      await llm.generate(prompts(r), params);
      const us = (performance.now() - t0) * 1000;
      const d = stageTimesSince(before, engine.stageTimes());
      results.push({ us, d });
    }
    // the run with the median wall time
    const { us, d } = results.sort((a, b) => a.us - b.us)[Math.floor(results.length / 2)];
    const per = (x: number) => ms(x / d.steps);
    const cells = {
      seqs,
      micro,
      depth: engine.pipelineDepth,
      steps: d.steps,
      overlapped: d.overlapped,
      tok_s: +((seqs * TOKENS) / (us / 1e6)).toFixed(1),
      run_ms: ms(us),
      step_ms: per(d.wallUs),
      ...Object.fromEntries(d.stages.flatMap((s) => [[`s${s.stage}_busy_ms`, per(s.busyUs)], [`s${s.stage}_idle_ms`, per(s.idleUs)], [`s${s.stage}_idle_pct`, Math.round((100 * s.idleUs) / d.wallUs)], [`s${s.stage}_run_idle_pct`, Math.round(100 * (1 - s.busyUs / us))]])),
      between_steps_ms: per(us - d.wallUs),
    };
    console.log(Object.entries(cells).map(([k, v]) => `${k}=${v}`).join("  "));
  } finally {
    llm.close();
    engine.close();
    delete process.env[MICRO_BATCHES_ENV];
    delete process.env[PIPELINE_DEPTH_ENV];
  }
}

const tmp = mkdtempSync(join(tmpdir(), "llmrt-bench-pipeline-"));
try {
  // the model of bench/parallel.ts: a random Llama where compute, not bookkeeping, fills a step (~26M parameters)
  const ckpt = syntheticCheckpoint(syntheticConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 4, vocabSize: 4096, maxPositionEmbeddings: 512 }), 1);
  const dir = join(tmp, "cpu-pp2");
  buildShardedEngineDir(ckpt, dir, { tp: 1, pp: 2 }, { target: "cpu", maxSeqs: 16, maxBatchTokens: 256, maxLogitRows: 256, maxSeqLen: 256 });
  ckpt.close();
  console.log(`cpu target, PP=2 (1 thread a stage), prompts of ${PROMPT + 2}-${PROMPT + 6} tokens, ${TOKENS} tokens a sequence, ${RUNS} runs (median shown); load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  for (const seqs of list(args.seqs).map(Number)) for (const micro of list(args.micro)) for (const depth of list(args.depth)) await row(dir, seqs, micro, depth);
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Cross-step pipelining (issue 10): a --pp 2 and a --tp 2 --pp 2 engine on the cpu target
 * keep two step groups in flight (stage 0 runs one group's step while stage 1 runs the
 * other's) and give the single-rank engine's greedy tokens for concurrent sequences of
 * different lengths (chunked prefill), arrivals while others decode, a stop string and a
 * request cancelled while steps are in flight; every KV block is free at the end. The same
 * scenario with pipelineDepth 1 (LLMRT_PIPELINE_DEPTH=1) overlaps no steps, nor does
 * "auto" on the cpu target with fewer than 16 sequences (MIN_MICRO_BATCH_TOKENS) in flight.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { buildShardedEngineDir } from "../../src/parallel/build.js";
import { PIPELINE_DEPTH_ENV, ShardedEngine } from "../../src/parallel/sharded-engine.js";
import { ASCII_VOCAB_SIZE } from "../../src/tokenizer/ascii.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-parallel-pipeline-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const build = { target: "cpu" as const, maxSeqs: 8, maxBatchTokens: 32, maxLogitRows: 32, maxSeqLen: 128 };
const ckpt = syntheticCheckpoint(syntheticConfig({ hiddenSize: 64, intermediateSize: 96, numLayers: 4, numHeads: 4, numKvHeads: 2, vocabSize: ASCII_VOCAB_SIZE, maxPositionEmbeddings: 128 }), 5);
const dirs = { single: join(tmp, "single"), pp2: join(tmp, "pp2"), tp2pp2: join(tmp, "tp2pp2") };
buildEngineDir(ckpt, dirs.single, build);
buildShardedEngineDir(ckpt, dirs.pp2, { tp: 1, pp: 2 }, build);
buildShardedEngineDir(ckpt, dirs.tp2pp2, { tp: 2, pp: 2 }, build);

const ids = (seed: number, n: number) => ({ promptTokenIds: [1, ...Array.from({ length: n }, (_, k) => 4 + ((k * 29 + seed * 13) % 90))] });
const GREEDY = { temperature: 0, ignoreEos: true };
/** Name -> prompt and output length: 3 at once (one prefilled in chunks), 2 arriving while they decode. */
const FIRST = { a: [ids(1, 40), 14], b: [ids(2, 5), 9], c: [ids(3, 17), 18] } as const;
const LATER = { d: [ids(4, 25), 12], e: [ids(5, 3), 16] } as const;
const CANCEL = ids(6, 9);
const STOPPED = ids(7, 6);

interface Outcome {
  tokens: Record<string, number[]>;
  stopped: { tokens: number[]; text: string; finishReason: string | null };
  cancelled: { tokens: number[]; finishReason: string | null; inFlightAtAbort: number };
  overlapped: number;
  kvFree: boolean;
}

async function scenario(dir: string, stop: string, depth?: string): Promise<Outcome> {
  process.env.LLMRT_THREADS = "2";
  if (depth) process.env[PIPELINE_DEPTH_ENV] = depth;
  const llm = await LLM.load(dir, { maxSeqs: 8, maxBatchTokens: 32 });
  delete process.env.LLMRT_THREADS;
  delete process.env[PIPELINE_DEPTH_ENV];
  try {
    const gen = (p: { promptTokenIds: number[] }, maxTokens: number) => llm.generate(p, { ...GREEDY, maxTokens }).then((o) => o[0].outputs[0]);
    const tokens: Record<string, number[]> = {};
    const later: Promise<void>[] = [];
    const abort = new AbortController();
    const cancelled = { tokens: [] as number[], finishReason: null as string | null, inFlightAtAbort: -1 };
    // a: streamed; after its 3rd token d and e arrive, after its 6th the cancellable one is cancelled (steps of the other group in flight)
    const streamA = (async () => {
      const out: number[] = [];
      for await (const o of llm.generateStream(FIRST.a[0], { ...GREEDY, maxTokens: FIRST.a[1] })) {
        out.push(...o.outputs[0].tokenIds.slice(out.length));
        if (out.length >= 3 && later.length === 0) for (const [k, [p, n]] of Object.entries(LATER)) later.push(gen(p, n).then((c) => void (tokens[k] = c.tokenIds)));
        if (out.length >= 6 && cancelled.inFlightAtAbort < 0 && cancelled.tokens.length > 0) {
          cancelled.inFlightAtAbort = llm.core.stepsInFlight;
          abort.abort();
        }
      }
      tokens.a = out;
    })();
    const cancel = (async () => {
      for await (const o of llm.generateStream(CANCEL, { ...GREEDY, maxTokens: 60 }, { signal: abort.signal })) {
        cancelled.tokens = o.outputs[0].tokenIds;
        cancelled.finishReason = o.outputs[0].finishReason;
      }
    })();
    const stopped = gen(STOPPED, 24);
    await Promise.all([streamA, cancel, ...Object.entries(FIRST).filter(([k]) => k !== "a").map(([k, [p, n]]) => gen(p, n).then((c) => void (tokens[k] = c.tokenIds)))]);
    await Promise.all(later);
    const s = await llm.generate(STOPPED, { ...GREEDY, maxTokens: 24, stop: stop ? [stop] : [] }).then((o) => o[0].outputs[0]);
    await stopped;
    // a step of the cancelled request may still be in flight: its blocks are freed once it is done
    for (let t0 = performance.now(); llm.core.hasWork && performance.now() - t0 < 10_000; ) await new Promise((r) => setTimeout(r, 5));
    const st = llm.stats();
    const engine = llm.core.engine;
    return {
      tokens,
      stopped: { tokens: s.tokenIds, text: s.text, finishReason: s.finishReason },
      cancelled,
      overlapped: engine instanceof ShardedEngine ? engine.stageTimes().overlapped : 0,
      kvFree: st.kvBlocksFree === st.kvBlocksTotal && st.running + st.waiting === 0,
    };
  } finally {
    llm.close();
  }
}

test("--pp 2 and --tp 2 --pp 2 (cpu) with two steps in flight give the single-rank greedy tokens; cancel, stop string, no leaked KV", async () => {
  // the stop string: two characters from the middle of the stopped request's free-running text
  const free = await LLM.load(dirs.single, { maxSeqs: 8, maxBatchTokens: 32 });
  let stop: string;
  let cancelFull: number[];
  try {
    const text = (await free.generate(STOPPED, { ...GREEDY, maxTokens: 24 }))[0].outputs[0].text;
    stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    cancelFull = (await free.generate(CANCEL, { ...GREEDY, maxTokens: 60 }))[0].outputs[0].tokenIds;
  } finally {
    free.close();
  }
  assert.equal(stop.length, 2, "the free-running text is long enough to take a stop string from");
  const want = await scenario(dirs.single, stop);
  assert.equal(want.stopped.finishReason, "stop");
  assert.ok(want.stopped.tokens.length < 24);
  for (const [name, dir] of [["pp 2", dirs.pp2], ["tp 2 x pp 2", dirs.tp2pp2]]) {
    const got = await scenario(dir, stop, "2"); // 2: groups from one sequence ("auto" on cpu waits for 16 in the first)
    assert.deepEqual(got.tokens, want.tokens, `${name}: greedy tokens`);
    assert.deepEqual(got.stopped, want.stopped, `${name}: stop string`);
    assert.ok(got.overlapped > 0, `${name}: steps overlapped (${got.overlapped})`);
    assert.equal(got.cancelled.finishReason, "abort", `${name}: cancelled`);
    assert.ok(got.cancelled.tokens.length < 60);
    assert.deepEqual(got.cancelled.tokens, cancelFull.slice(0, got.cancelled.tokens.length), `${name}: the cancelled request's tokens so far`);
    assert.ok(got.cancelled.inFlightAtAbort > 0, `${name}: a step was in flight when it was cancelled`);
    assert.ok(got.kvFree, `${name}: every KV block free at the end`);
  }
  const off = await scenario(dirs.pp2, stop, "1");
  assert.deepEqual(off.tokens, want.tokens, "pp 2, pipelineDepth 1");
  assert.equal(off.overlapped, 0, "pipelineDepth 1: one step at a time");
  const auto = await scenario(dirs.pp2, stop);
  assert.deepEqual(auto.tokens, want.tokens, "pp 2, pipelineDepth auto");
  assert.equal(auto.overlapped, 0, "auto on the cpu target: under 16 sequences, one group");
});

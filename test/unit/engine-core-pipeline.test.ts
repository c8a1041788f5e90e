/**
 * The engine core with step groups (an engine whose pipelineDepth is 2), on a stand-in
 * engine that runs each submitted step only when it is waited (in submission order, as
 * pipeline stages do): greedy tokens equal the unpipelined core's under arrivals, chunked
 * prefill, prefix caching and a tight KV budget (preemption within a group); two steps are
 * in flight at once; a request cancelled while its step is in flight keeps its KV blocks
 * until that step is done; no block leaks. The scheduler's groups: fair share, group-local
 * preemption.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine, type PendingLogits } from "../../src/engine/engine.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { EngineCore } from "../../src/runtime/engine-core.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { normalizeSamplingParams } from "../../src/runtime/sampling-params.js";
import { Scheduler } from "../../src/runtime/scheduler.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { Rng } from "../../src/runtime/rng.js";
import { AsciiTokenizer, ASCII_VOCAB_SIZE } from "../../src/tokenizer/ascii.js";

const config = syntheticConfig({ numLayers: 2, hiddenSize: 32, numHeads: 4, numKvHeads: 2, intermediateSize: 48, vocabSize: ASCII_VOCAB_SIZE, maxPositionEmbeddings: 128 });
const ckpt = syntheticCheckpoint(config, 11);
const tok = new AsciiTokenizer();

/** Runs a step when it is waited, not when submitted; counts how many were in flight at most. */
class LazyPipelineEngine extends Engine {
  private queue: StepBatch[] = [];
  maxInFlight = 0;

  override get pipelineDepth(): number {
    return 2;
  }

  override submit(step: StepBatch): PendingLogits {
    if (this.queue.length >= 2) throw new Error("more than pipelineDepth steps in flight");
    this.queue.push(step);
    this.maxInFlight = Math.max(this.maxInFlight, this.queue.length);
    return {
      wait: () => {
        if (this.queue[0] !== step) throw new Error("waited out of order");
        this.queue.shift();
        return this.forward(step);
      },
    };
  }
}

function core(pipelined: boolean, opts: { numBlocks?: number; maxSeqs?: number; maxBatchTokens?: number } = {}) {
  const o = { blockSize: 4, maxSeqLen: 128, maxSeqs: opts.maxSeqs ?? 8, numBlocks: opts.numBlocks };
  const plain = Engine.fromCheckpoint(ckpt, o);
  const engine = pipelined ? new LazyPipelineEngine(plain.config, plain.graph, (plain as unknown as { bound: never }).bound, plain.maxSeqLen, plain.limits) : plain;
  return { c: new EngineCore(engine, tok, { maxSeqs: opts.maxSeqs ?? 8, maxBatchTokens: opts.maxBatchTokens ?? 64 }), engine };
}

function prompt(rng: Rng, len: number): number[] {
  return [1, ...Array.from({ length: len }, () => 4 + Math.floor(rng.nextFloat() * 90))];
}

/** Arrivals at given steps, run to the end; every request's output ids. */
function run(c: EngineCore, prompts: number[][], arrive: number[], maxTokens: number[]): Map<string, number[]> {
  const out = new Map(prompts.map((_, i) => [`r${i}`, [] as number[]]));
  for (let step = 0; c.hasWork || step <= Math.max(...arrive); step++) {
    arrive.forEach((s, i) => s === step && c.addRequest(`r${i}`, prompts[i], normalizeSamplingParams({ temperature: 0, maxTokens: maxTokens[i], ignoreEos: true })));
    for (const u of c.step()) out.get(u.id)!.push(...u.newTokenIds);
    if (step > 10000) throw new Error("no progress");
  }
  return out;
}

test("two step groups: greedy tokens equal one group's under arrivals, chunked prefill, shared prefixes and preemption; no leaked block", () => {
  const rng = new Rng(3);
  const shared = prompt(rng, 12);
  const prompts = Array.from({ length: 14 }, (_, i) => (i % 4 === 0 ? [...shared, ...prompt(rng, 3)].slice(0, 20) : prompt(rng, 1 + Math.floor(rng.nextFloat() * 30))));
  const arrive = prompts.map((_, i) => (i < 3 ? 0 : Math.floor(rng.nextFloat() * 25)));
  const maxTokens = prompts.map(() => 2 + Math.floor(rng.nextFloat() * 14));
  for (const numBlocks of [undefined, 24]) {
    const plain = core(false, { maxSeqs: 6, maxBatchTokens: 16, numBlocks });
    const piped = core(true, { maxSeqs: 6, maxBatchTokens: 16, numBlocks });
    const want = run(plain.c, prompts, arrive, maxTokens);
    const got = run(piped.c, prompts, arrive, maxTokens);
    prompts.forEach((_, i) => assert.deepEqual(got.get(`r${i}`), want.get(`r${i}`), `prompt ${i}, numBlocks ${numBlocks}`));
    assert.equal((piped.engine as LazyPipelineEngine).maxInFlight, 2, "two steps were in flight at once");
    if (numBlocks) assert.ok(piped.c.stats().numPreemptions > 0, "the tight budget preempted");
    assert.equal(piped.c.pool.numFree, piped.c.pool.numBlocks, "every KV block free at the end");
    piped.c.pool.checkInvariants([]);
  }
});

test("a request cancelled while its step is in flight keeps its blocks until that step is sampled", () => {
  const { c, engine } = core(true, { maxSeqs: 4 });
  const params = normalizeSamplingParams({ temperature: 0, maxTokens: 20, ignoreEos: true });
  const a = c.addRequest("a", [1, 5, 6, 7, 8, 9], params);
  c.addRequest("b", [1, 9, 8, 7], params);
  c.step(); // a and b go to different groups: both submitted, a's sampled, b's still in flight
  assert.equal((engine as LazyPipelineEngine).maxInFlight, 2);
  assert.equal(c.scheduler.group(a), 0);
  const b = [...c.scheduler.running].find((r) => r.id === "b")!;
  assert.equal(c.scheduler.group(b), 1);
  const held = b.seq.blockTable.length;
  assert.ok(held > 0);
  const free = c.pool.numFree;
  const u = c.abort("b")!;
  assert.equal(u.finishReason, "abort");
  assert.equal(c.pool.numFree, free, "blocks of a step in flight are not freed");
  assert.equal(b.seq.blockTable.length, held);
  const updates = c.step(); // a's next step submitted, b's step waited: its row is skipped
  assert.ok(updates.every((x) => x.id !== "b"));
  assert.equal(b.seq.blockTable.length, 0, "freed once its step is done");
  while (c.hasWork) c.step();
  assert.equal(c.pool.numFree, c.pool.numBlocks);
});

test("scheduler groups: arrivals fill each group to its fair share; preemption stays within the group scheduled", () => {
  const pool = new BlockPool(6, 4, false);
  const s = new Scheduler<{ seq: Sequence; priority: number; arrival: number }>(pool, { maxBatchTokens: 64, maxSeqs: 8 });
  const reqs = Array.from({ length: 4 }, (_, i) => ({ seq: new Sequence(i, [1, 2, 3, 4, 5]), priority: 0, arrival: i }));
  for (const r of reqs) s.add(r);
  const g0 = s.schedule(0, 2).slices.map((x) => x.req);
  assert.deepEqual(g0, reqs.slice(0, 2), "group 0 takes half of the 4");
  for (const x of g0) x.seq.numComputed = 5;
  const g1 = s.schedule(1, 2).slices.map((x) => x.req);
  assert.deepEqual(g1, [reqs[2]], "group 1: the rest of its share, as far as the 6 blocks go");
  // group 1's next step needs a block more than the pool has: it preempts its own sequence, never group 0's
  reqs[2].seq.numComputed = 5;
  reqs[2].seq.tokens.push(6, 7, 8, 9);
  const out = s.schedule(1, 2);
  assert.deepEqual(out.preempted, [reqs[2]]);
  assert.deepEqual(g0.map((r) => s.group(r)), [0, 0]);
  assert.ok(g0.every((r) => r.seq.blockTable.length === 2), "group 0 keeps its blocks");
});

test("scheduler groups: with minGroupSeqs, group 1 takes sequences only once group 0 holds that many", () => {
  const pool = new BlockPool(16, 4, false);
  const s = new Scheduler<{ seq: Sequence; priority: number; arrival: number }>(pool, { maxBatchTokens: 64, maxSeqs: 8, minGroupSeqs: 2 });
  const reqs = Array.from({ length: 3 }, (_, i) => ({ seq: new Sequence(i, [1, 2, 3]), priority: 0, arrival: i }));
  for (const r of reqs) s.add(r);
  assert.equal(s.schedule(1, 2).slices.length, 0, "group 0 is empty: group 1 stays closed");
  assert.deepEqual(s.schedule(0, 2).slices.map((x) => x.req), reqs.slice(0, 2));
  assert.deepEqual(s.schedule(1, 2).slices.map((x) => x.req), [reqs[2]]);
});

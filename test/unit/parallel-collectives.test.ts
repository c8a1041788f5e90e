/**
 * Shared-memory collectives between rank threads, as properties on random data of odd
 * sizes: all-reduce is the sum of every rank's buffer, bit-identical on every rank; the
 * partial products of a row-parallel split sum to the whole product; all-gather of
 * uneven parts is their concatenation; pipeline messages arrive in order, intact.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { workerBoot } from "../../src/parallel/spawn.js";
import { allocWorld, WorldMap, type WorldLayout } from "../../src/parallel/world.js";

const SIZES = [1, 2, 3, 7, 33, 257, 1000, 4099];

async function runRanks(tp: number, pp: number): Promise<{ rank: number; failures: string[]; digests: number[]; calls: number }[]> {
  const layout: WorldLayout = { tp, pp, maxCollective: 3 * 4099 + 8, maxMessage: 4099 + 8, logitFloats: 1, stepWords: 16 };
  const buffers = allocWorld(new WorldMap(layout));
  const boot = await workerBoot(new URL("../helpers/parallel-collectives-worker.ts", import.meta.url));
  return Promise.all(
    Array.from({ length: tp * pp }, (_, rank) => new Promise<{ rank: number; failures: string[]; digests: number[]; calls: number }>((resolve, reject) => {
      const w = new Worker(boot, { eval: true, workerData: { rank, layout, buffers, sizes: SIZES } });
      w.once("message", (m) => (resolve(m), void w.terminate()));
      w.once("error", reject);
    })),
  );
}

for (const [tp, pp] of [[2, 1], [3, 1], [2, 2]]) {
  test(`collectives tp ${tp} x pp ${pp}: all-reduce = sum of shards (same bits on every rank), all-gather of uneven parts, send/recv in order`, async () => {
    const results = await runRanks(tp, pp);
    for (const r of results) assert.deepEqual(r.failures, [], `rank ${r.rank}`);
    // every rank of a tensor-parallel group holds the identical reduced buffer
    for (const r of results) assert.deepEqual(r.digests, results[Math.floor(r.rank / tp) * tp].digests);
    assert.ok(results.every((r) => r.calls === (tp > 1 ? 3 : 0) * SIZES.length + (pp > 1 ? 3 : 0) * SIZES.length)); // 2 all-reduce + 1 all-gather (+ 3 send or recv) per size
  });
}

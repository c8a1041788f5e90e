import { test } from "node:test";
import assert from "node:assert/strict";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { Rng } from "../../src/runtime/rng.js";
import { blockKey } from "../../src/runtime/block-hash.js";

const BS = 4;

/** Simulates computing a sequence's tokens up to `upTo` (what the engine core does after a step). */
function compute(pool: BlockPool, seq: Sequence, upTo: number): void {
  assert.ok(pool.reserve(seq, upTo));
  seq.numComputed = upTo;
  pool.commitFull(seq);
}

test("block keys chain: the same block after a different prefix gets a different key", () => {
  const a = [1, 2, 3, 4, 5, 6, 7, 8];
  const b = [9, 2, 3, 4, 5, 6, 7, 8];
  const ka0 = blockKey(null, a, 0, BS);
  const kb0 = blockKey(null, b, 0, BS);
  assert.notEqual(ka0, kb0);
  assert.notEqual(blockKey(ka0, a, 4, BS), blockKey(kb0, b, 4, BS));
  assert.equal(blockKey(ka0, a, 4, BS), blockKey(blockKey(null, [...a], 0, BS), [...a], 4, BS));
});

test("a second prompt with the same prefix reuses its full blocks, by reference", () => {
  const pool = new BlockPool(16, BS);
  const s1 = new Sequence(1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  compute(pool, s1, 10);
  const s2 = new Sequence(2, [1, 2, 3, 4, 5, 6, 7, 8, 42]);
  assert.equal(pool.acquirePrefix(s2), 8);
  assert.deepEqual(s2.blockTable, s1.blockTable.slice(0, 2));
  pool.checkInvariants([s1, s2]);
  // a prompt that is exactly two blocks long still computes its last token
  const s3 = new Sequence(3, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(pool.acquirePrefix(s3), 4);
  pool.checkInvariants([s1, s2, s3]);
});

test("freed cached blocks are reused until evicted, least recently freed first", () => {
  const pool = new BlockPool(4, BS);
  const s1 = new Sequence(1, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  compute(pool, s1, 9); // 3 blocks
  pool.release(s1);
  assert.equal(pool.numFree, 4);
  const s2 = new Sequence(2, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(pool.acquirePrefix(s2), 8, "both full blocks survive the release");
  pool.release(s2);
  // fill the pool with unrelated tokens: the cached blocks get evicted
  const s3 = new Sequence(3, Array.from({ length: 16 }, (_, i) => 100 + i));
  compute(pool, s3, 16);
  pool.release(s3);
  const s4 = new Sequence(4, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(pool.acquirePrefix(s4), 0);
});

test("property: random allocate / share / compute / release keeps the pool's invariants", () => {
  const rng = new Rng(123);
  const pool = new BlockPool(32, BS);
  const live: Sequence[] = [];
  const prefixes = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 9, 9, 9], [1, 2, 3, 4, 7, 7, 7, 7]];
  let id = 0;
  for (let iter = 0; iter < 5000; iter++) {
    const r = rng.nextFloat();
    if (r < 0.4) {
      const base = prefixes[Math.floor(rng.nextFloat() * prefixes.length)];
      const tail = Array.from({ length: 1 + Math.floor(rng.nextFloat() * 10) }, () => Math.floor(rng.nextFloat() * 5));
      const seq = new Sequence(id++, [...base, ...tail]);
      const reused = pool.acquirePrefix(seq);
      assert.equal(reused % BS, 0);
      assert.ok(reused < seq.numTokens);
      for (let i = 0; i < reused; i++) assert.equal(seq.tokens[i], [...base, ...tail][i]);
      if (pool.reserve(seq, seq.numTokens)) {
        seq.numComputed = seq.numTokens;
        pool.commitFull(seq);
        live.push(seq);
      } else {
        pool.release(seq);
      }
    } else if (r < 0.7 && live.length > 0) {
      const seq = live[Math.floor(rng.nextFloat() * live.length)];
      seq.tokens.push(Math.floor(rng.nextFloat() * 5));
      if (pool.reserve(seq, seq.numTokens)) {
        seq.numComputed = seq.numTokens;
        pool.commitFull(seq);
      } else seq.tokens.pop();
    } else if (live.length > 0) {
      const i = Math.floor(rng.nextFloat() * live.length);
      pool.release(live[i]);
      live.splice(i, 1);
    }
    pool.checkInvariants(live);
  }
  for (const s of live) pool.release(s);
  pool.checkInvariants([]);
  assert.equal(pool.numFree, 32);
});

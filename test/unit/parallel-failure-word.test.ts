/**
 * The failure word (parallel/world.ts): a failing thread claims FAILED, then writes its
 * message. A reader that sees FAILED in between must wait for the message, not report an
 * empty one (seen as "RankError: sharded engine: " under load).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { ERR_AT, ERR_BYTES, failureOf, W } from "../../src/parallel/world.js";

test("failureOf waits for the message of a failure claimed but not yet written", async () => {
  const ctrl = new Int32Array(new SharedArrayBuffer(ERR_AT + ERR_BYTES));
  const STARTED = 10; // a free control word
  Atomics.store(ctrl, W.FAILED, 2); // rank 1 claimed the failure...
  // ...and writes its message 50 ms after the reader starts looking (as failWorld does)
  const w = new Worker(
    `const { workerData: { buf, at, len, started } } = require("node:worker_threads");
     const c = new Int32Array(buf);
     Atomics.store(c, started, 1); Atomics.notify(c, started);
     Atomics.wait(c, 0, 0, 50);
     const bytes = new TextEncoder().encode("rank 1 failed: boom");
     new Uint8Array(buf, at, bytes.length).set(bytes);
     Atomics.store(c, len, bytes.length + 1); Atomics.notify(c, len);`,
    { eval: true, workerData: { buf: ctrl.buffer, at: ERR_AT, len: W.ERR_LEN, started: STARTED } },
  );
  try {
    await new Promise<void>((r) => {
      const poll = () => (Atomics.load(ctrl, STARTED) ? r() : setTimeout(poll, 1));
      poll();
    });
    assert.deepEqual(failureOf(ctrl), { who: 1, message: "rank 1 failed: boom" });
  } finally {
    await w.terminate();
  }
});

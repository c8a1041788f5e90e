/**
 * Starting the ranks. The main thread blocks in Atomics.wait during a step, so it cannot
 * hear a rank thread exit; a small supervisor thread, whose event loop never blocks,
 * starts the ranks, watches them, and turns an exit or an uncaught error into the shared
 * failure word (waking every waiter). The supervisor is plain JavaScript; ranks are
 * TypeScript modules, loaded through tsx when llmrt runs from source (Node 20 does not
 * pass `--import tsx` on to worker threads).
 */
import { Worker } from "node:worker_threads";
import type { RankInit } from "./rank.js";

const SUPERVISOR_SOURCE = `
const { Worker, parentPort, workerData } = require("node:worker_threads");
const { boot, ranks, ctrlBuffer, errAt, errBytes } = workerData;
const ctrl = new Int32Array(ctrlBuffer);
let quitting = false;
function fail(rank, message) {
  if (quitting || Atomics.compareExchange(ctrl, 3, 0, rank + 1) !== 0) return;
  const bytes = new TextEncoder().encode(message).subarray(0, errBytes);
  new Uint8Array(ctrlBuffer, errAt, errBytes).set(bytes);
  Atomics.store(ctrl, 5, bytes.length);
  for (let i = 0; i < errAt / 4; i++) Atomics.notify(ctrl, i);
}
const workers = ranks.map((init) => {
  const w = new Worker(boot, { eval: true, workerData: init });
  w.on("error", (e) => fail(init.rank, "rank " + init.rank + " threw outside a step: " + (e && e.stack || e)));
  // after CMD_QUIT (control word 1 = 2) ranks exit on purpose
  w.on("exit", (code) => Atomics.load(ctrl, 1) === 2 || fail(init.rank, "rank " + init.rank + " exited (code " + code + ")"));
  return w;
});
parentPort.on("message", (m) => {
  if (m !== "quit") return;
  quitting = true;
  Promise.all(workers.map((w) => w.terminate())).then(() => process.exit(0));
});
`;

/** Code that loads rank-worker in a fresh thread, through tsx when running from source. */
function rankBoot(): string {
  const here = import.meta.url;
  const entry = new URL(here.endsWith(".ts") ? "./rank-worker.ts" : "./rank-worker.js", here).href;
  if (!here.endsWith(".ts")) return `import(${JSON.stringify(entry)});`;
  const tsx = import.meta.resolve("tsx/esm/api");
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
}

/** Starts the supervisor, which starts every rank; post it "quit" to stop them all. */
export function spawnRanks(ranks: RankInit[], errAt: number, errBytes: number): Worker {
  return new Worker(SUPERVISOR_SOURCE, { eval: true, workerData: { boot: rankBoot(), ranks, ctrlBuffer: ranks[0].buffers.ctrl, errAt, errBytes } });
}

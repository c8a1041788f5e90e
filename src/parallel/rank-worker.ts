/**
 * Entry of a rank's thread (started by the supervisor, see spawn.ts): load, say ready,
 * serve commands. A failure to load is reported through the shared failure word, so the
 * main thread, which may be blocked waiting, sees it.
 */
import { workerData } from "node:worker_threads";
import { Rank, type RankInit } from "./rank.js";
import { failWorld, W } from "./world.js";

const init = workerData as RankInit;
const ctrl = new Int32Array(init.buffers.ctrl);
let rank: Rank | null = null;
try {
  rank = new Rank(init);
} catch (e) {
  failWorld(ctrl, init.rank, `rank ${init.rank} failed to load ${init.dir}: ${(e as Error)?.message ?? e}`);
}
if (rank) {
  Atomics.add(ctrl, W.READY, 1);
  Atomics.notify(ctrl, W.READY);
  rank.serve();
}

/** One rank of bench/parallel.ts's collective micro-benchmark: timed all-reduces, all-gathers and pipeline hand-offs. */
import { parentPort, workerData } from "node:worker_threads";
import { placeOf } from "../src/parallel/layout.js";
import { ShmCollectives } from "../src/parallel/shm-collectives.js";
import { WorldMap, type WorldBuffers, type WorldLayout } from "../src/parallel/world.js";

const { rank, layout, buffers, sizes, iters } = workerData as { rank: number; layout: WorldLayout; buffers: WorldBuffers; sizes: number[]; iters: number };
const place = placeOf(layout, rank);
const comm = new ShmCollectives(new WorldMap(layout), buffers, place);
const out: Record<string, number> = {};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const n of sizes) {
  const buf = new Float32Array(n).fill(rank + 1);
  if (layout.tp > 1) {
    const t: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      comm.allReduce(buf, n);
      t.push((performance.now() - t0) * 1000);
    }
    out[n] = median(t.slice(Math.floor(iters / 5))); // after warm-up
  } else {
    // pipeline: stage 0 hands `iters` messages to stage 1 (two may be in flight); time per hand-off
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) {
      if (place.stage === 0) comm.send(buf, n, rank + 1);
      else comm.recv(buf, n, rank - 1);
    }
    out[n] = ((performance.now() - t0) * 1000) / iters;
  }
}
parentPort!.postMessage(out);

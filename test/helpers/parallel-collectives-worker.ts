/**
 * One rank of test/unit/parallel-collectives.test.ts: runs the collective properties on
 * deterministic random data (every rank can regenerate every other rank's data) and
 * posts what it found; the test compares across ranks.
 */
import { parentPort, workerData } from "node:worker_threads";
import { splitRange } from "../../src/graph/passes/shard.js";
import { placeOf } from "../../src/parallel/layout.js";
import { ShmCollectives } from "../../src/parallel/shm-collectives.js";
import { WorldMap, type WorldBuffers, type WorldLayout } from "../../src/parallel/world.js";

interface Init {
  rank: number;
  layout: WorldLayout;
  buffers: WorldBuffers;
  sizes: number[];
}

const init = workerData as Init;

/** Deterministic values in [-1, 1), a function of (seed, index). */
function rand(seed: number, n: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 0x100000000) * 2 - 1;
  }
  return out;
}

const { tp, pp } = init.layout;
const place = placeOf({ tp, pp }, init.rank);
const comm = new ShmCollectives(new WorldMap(init.layout), init.buffers, place);
const failures: string[] = [];
const digests: number[] = [];
const stageRanks = Array.from({ length: tp }, (_, t) => place.stage * tp + t);

for (const n of init.sizes) {
  // all-reduce: the sum of every rank's buffer, summed in rank order
  const buf = rand(init.rank * 7919 + n, n);
  comm.allReduce(buf, n);
  const parts = stageRanks.map((r) => rand(r * 7919 + n, n));
  for (let i = 0; i < n; i++) {
    let want = 0;
    for (const p of parts) want += p[i];
    if (buf[i] !== Math.fround(want)) {
      failures.push(`all-reduce n=${n} [${i}]: ${buf[i]} != ${Math.fround(want)}`);
      break;
    }
  }
  digests.push(buf.reduce((a, b) => a + b, 0));

  // sum of shards equals the whole: x [3, n] @ w [5, n]^T split by columns of the inner dimension
  const rows = 3;
  const x = rand(11 + n, rows * n);
  const w = rand(13 + n, 5 * n);
  const [lo, hi] = splitRange(n, tp, place.tpRank);
  const part = new Float32Array(rows * 5);
  const whole = new Float32Array(rows * 5);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < 5; o++) {
      let a = 0;
      let b = 0;
      for (let k = 0; k < n; k++) {
        const v = x[r * n + k] * w[o * n + k];
        b += v;
        if (k >= lo && k < hi) a += v;
      }
      part[r * 5 + o] = a;
      whole[r * 5 + o] = b;
    }
  }
  comm.allReduce(part, part.length);
  for (let i = 0; i < part.length; i++) {
    if (Math.abs(part[i] - whole[i]) > 1e-4 * Math.max(1, Math.abs(whole[i]))) failures.push(`row-parallel n=${n} [${i}]: ${part[i]} vs ${whole[i]}`);
  }

  // all-gather of uneven column parts [rows, parts[r]] -> [rows, n]
  const cols = stageRanks.map((_, t) => splitRange(n, tp, t)).map(([a, b]) => b - a);
  const mine = rand(place.rank * 31 + n, rows * cols[place.tpRank]);
  const out = new Float32Array(rows * n);
  comm.allGather(out, mine, rows, cols);
  let off = 0;
  stageRanks.forEach((r, t) => {
    const theirs = rand(r * 31 + n, rows * cols[t]);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols[t]; j++) {
        if (out[i * n + off + j] !== theirs[i * cols[t] + j]) failures.push(`all-gather n=${n} row ${i} col ${off + j}`);
      }
    }
    off += cols[t];
  });

  // send/recv down the pipeline: three messages in a row (two in flight), each checked
  if (pp > 1) {
    for (let k = 0; k < 3; k++) {
      if (place.stage > 0) {
        const got = new Float32Array(n + k);
        comm.recv(got, n + k, init.rank - tp);
        const want = rand((init.rank - tp) * 101 + n + k, n + k);
        if (got.some((v, i) => v !== want[i])) failures.push(`recv n=${n + k} from ${init.rank - tp}`);
      }
      if (place.stage < pp - 1) comm.send(rand(init.rank * 101 + n + k, n + k), n + k, init.rank + tp);
    }
  }
}
parentPort!.postMessage({ rank: init.rank, failures, digests, calls: comm.times.calls });

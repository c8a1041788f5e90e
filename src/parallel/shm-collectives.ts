/**
 * Collectives between ranks that are threads of one process, over the shared memory of
 * world.ts. The CPU counterpart of NCCL behind the same interface (backends/collectives.ts).
 *
 * all-reduce: each rank copies its partial into its slot; barrier; rank r sums chunk r of
 * every slot in rank order into the result area (so every element is summed once, in one
 * fixed order: all ranks read identical bits); barrier; each copies the result out.
 * all-gather: each rank copies its part into its slot; barrier; each assembles the
 * columns of all slots; barrier (before the slots are reused).
 * send/recv: a two-slot channel per sender, so a stage can run one micro-batch ahead.
 */
import type { Collectives } from "../backends/collectives.js";
import { splitRange } from "../graph/passes/shard.js";
import type { RankPlace } from "./layout.js";
import { barrier, waitChange, type WorldBuffers, WorldMap } from "./world.js";

/** Time spent in collectives, for the benchmark (microseconds, calls). */
export interface CommTimes {
  allReduceUs: number;
  allGatherUs: number;
  sendUs: number;
  recvUs: number;
  calls: number;
}

export class ShmCollectives implements Collectives {
  readonly tpRank: number;
  readonly tpSize: number;
  readonly rank: number;
  private readonly stage: number;
  private readonly ctrl: Int32Array;
  private readonly data: Float32Array;
  readonly times: CommTimes = { allReduceUs: 0, allGatherUs: 0, sendUs: 0, recvUs: 0, calls: 0 };

  constructor(
    private readonly map: WorldMap,
    buffers: WorldBuffers,
    place: RankPlace,
    private readonly spin?: number,
  ) {
    this.ctrl = new Int32Array(buffers.ctrl);
    this.data = new Float32Array(buffers.data);
    this.tpRank = place.tpRank;
    this.tpSize = map.l.tp;
    this.rank = place.rank;
    this.stage = place.stage;
  }

  private sync(): void {
    barrier(this.ctrl, this.map.barrierWord(this.stage), this.tpSize, this.spin);
  }

  private fits(count: number, room: number, what: string): void {
    if (count > room) throw new Error(`parallel: ${what} of ${count} floats exceeds the ${room} planned (engine capacity)`);
  }

  allReduce(buf: Float32Array, count: number): void {
    const t0 = performance.now();
    const max = this.map.l.maxCollective;
    this.fits(count, max, "all-reduce");
    const n = this.tpSize;
    const res = this.map.resultAt(this.stage);
    this.data.set(buf.subarray(0, count), this.map.slotAt(this.stage, this.tpRank));
    this.sync();
    const [lo, hi] = splitRange(count, n, this.tpRank);
    const base = this.map.slotAt(this.stage, 0);
    const d = this.data;
    for (let i = lo; i < hi; i++) {
      let s = d[base + i];
      for (let r = 1; r < n; r++) s += d[base + r * max + i];
      d[res + i] = s;
    }
    this.sync();
    buf.set(d.subarray(res, res + count));
    this.times.allReduceUs += (performance.now() - t0) * 1000;
    this.times.calls++;
  }

  allGather(out: Float32Array, part: Float32Array, rows: number, parts: readonly number[]): void {
    const t0 = performance.now();
    const max = this.map.l.maxCollective;
    const total = parts.reduce((a, b) => a + b, 0);
    this.fits(rows * Math.max(...parts), max, "all-gather");
    const mine = parts[this.tpRank];
    // into its own slot: the result area may still be read by a rank finishing the last all-reduce
    this.data.set(part.subarray(0, rows * mine), this.map.slotAt(this.stage, this.tpRank));
    this.sync();
    for (let r = 0, off = 0; r < this.tpSize; off += parts[r], r++) {
      const slot = this.data.subarray(this.map.slotAt(this.stage, r), this.map.slotAt(this.stage, r) + rows * parts[r]); // [rows, parts[r]]
      for (let i = 0; i < rows; i++) out.set(slot.subarray(i * parts[r], (i + 1) * parts[r]), i * total + off);
    }
    this.sync(); // the slots are rewritten by the next collective
    this.times.allGatherUs += (performance.now() - t0) * 1000;
    this.times.calls++;
  }

  send(buf: Float32Array, count: number, peer: number): void {
    const t0 = performance.now();
    this.fits(count, this.map.l.maxMessage, "pipeline message");
    if (peer !== this.rank + this.tpSize) throw new Error(`parallel: rank ${this.rank} sends only to its next stage (rank ${this.rank + this.tpSize}), not ${peer}`);
    const w = this.map.channelWord(this.rank);
    // both slots full: wait for the receiver to take one
    for (let sent = Atomics.load(this.ctrl, w); ; ) {
      const got = Atomics.load(this.ctrl, w + 1);
      if (sent - got < 2) break;
      waitChange(this.ctrl, w + 1, got, this.spin);
    }
    const sent = Atomics.load(this.ctrl, w);
    this.data.set(buf.subarray(0, count), this.map.messageAt(this.rank, sent % 2));
    Atomics.store(this.ctrl, w + 2 + (sent % 2), count);
    Atomics.add(this.ctrl, w, 1);
    Atomics.notify(this.ctrl, w);
    this.times.sendUs += (performance.now() - t0) * 1000;
    this.times.calls++;
  }

  recv(buf: Float32Array, count: number, peer: number): void {
    const t0 = performance.now();
    if (peer !== this.rank - this.tpSize) throw new Error(`parallel: rank ${this.rank} receives only from its previous stage (rank ${this.rank - this.tpSize}), not ${peer}`);
    const w = this.map.channelWord(peer);
    const got = Atomics.load(this.ctrl, w + 1);
    while (Atomics.load(this.ctrl, w) === got) waitChange(this.ctrl, w, got, this.spin);
    const k = got % 2;
    const sentCount = Atomics.load(this.ctrl, w + 2 + k);
    if (sentCount !== count) throw new Error(`parallel: rank ${this.rank} expected ${count} floats from rank ${peer}, got ${sentCount}`);
    const at = this.map.messageAt(peer, k);
    buf.set(this.data.subarray(at, at + count));
    Atomics.add(this.ctrl, w + 1, 1);
    Atomics.notify(this.ctrl, w + 1);
    this.times.recvUs += (performance.now() - t0) * 1000;
    this.times.calls++;
  }
}

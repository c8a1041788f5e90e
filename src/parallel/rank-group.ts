/**
 * The main thread's side of the ranks, as a BoundGraph: forward() writes the step into
 * shared memory, wakes every rank, and blocks until all are done (or one failed), then
 * reads the logits the last stage wrote. KV block copies are queued and travel with the
 * next step (every rank applies them before it runs). After a failure every call throws
 * the same RankError: the ranks' KV caches are gone, so the group cannot go on.
 */
import type { Worker } from "node:worker_threads";
import type { BoundGraph, KvCacheShape } from "../backends/backend.js";
import type { StepBatch } from "../graph/step-batch.js";
import { LlmrtError } from "../errors.js";
import { LOGITS } from "../models/llama.js";
import { encodeStep } from "./step-codec.js";
import { CMD_QUIT, CMD_STEP, failureOf, PeerFailed, STAT_FIELDS, STATS_AT, W, waitChange, type WorldBuffers, type WorldLayout, type WorldMap } from "./world.js";

/** A rank failed (threw, exited, or failed to load): says which, and what it said. */
export class RankError extends LlmrtError {
  constructor(readonly rank: number, message: string) {
    super("rank_failed", message, "the sharded engine cannot continue (its ranks' KV caches are lost): restart the process or reload the model");
  }
}

/** Per-rank communication totals since load (see world.ts STAT_FIELDS). */
export interface RankStats {
  allReduceUs: number;
  allGatherUs: number;
  sendUs: number;
  recvUs: number;
  calls: number;
  steps: number;
  stepUs: number;
  kvBytes: number;
  /** Microseconds computing: steps less the time in collectives and pipeline hand-offs (waits included). */
  busyUs: number;
}

export class RankGroupBound implements BoundGraph {
  private readonly ctrl: Int32Array;
  private readonly stepArea: Int32Array;
  private readonly logits: Float32Array;
  private copies: [number, number][] = [];
  private error: RankError | null = null;
  private closed = false;
  /** forward() calls and their wall microseconds on the main thread (a step, start to the last rank done). */
  private readonly wall = { steps: 0, us: 0 };
  /** Resolves when the supervisor thread has exited (it ends the ranks first). */
  readonly stopped: Promise<void>;

  constructor(
    private readonly map: WorldMap,
    private readonly buffers: WorldBuffers,
    readonly kv: KvCacheShape,
    private readonly vocab: number,
    private readonly supervisor: Worker,
    private readonly spin?: number,
  ) {
    this.ctrl = new Int32Array(buffers.ctrl);
    this.stepArea = new Int32Array(buffers.step);
    this.logits = new Float32Array(buffers.data, map.logitsAt * 4, map.l.logitFloats);
    this.stopped = new Promise((r) => supervisor.once("exit", () => r()));
  }

  get world(): number {
    return this.map.l.tp * this.map.l.pp;
  }

  get layout(): WorldLayout {
    return this.map.l;
  }

  /** Bytes of KV cache over every rank (each wrote its own at load). */
  get kvBytes(): number {
    return this.stats().reduce((n, s) => n + s.kvBytes, 0);
  }

  /** The failure, if any rank failed (checked without blocking). */
  failure(): RankError | null {
    if (this.error) return this.error;
    const f = failureOf(this.ctrl);
    if (f) this.error = new RankError(f.who, `sharded engine: ${f.message}`);
    return this.error;
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    if (this.closed) throw new LlmrtError("rank_failed", "sharded engine: closed");
    const failed = this.failure();
    if (failed) throw failed;
    const t0 = performance.now();
    encodeStep(this.stepArea, step, this.copies);
    this.copies = [];
    Atomics.store(this.ctrl, W.DONE, 0);
    Atomics.store(this.ctrl, W.CMD, CMD_STEP);
    Atomics.add(this.ctrl, W.CMD_SEQ, 1);
    Atomics.notify(this.ctrl, W.CMD_SEQ);
    try {
      for (let done = 0; done < this.world; done = Atomics.load(this.ctrl, W.DONE)) waitChange(this.ctrl, W.DONE, done, this.spin);
    } catch (e) {
      if (e instanceof PeerFailed) throw this.failure()!;
      throw e;
    }
    const n = step.logitRows.length * this.vocab;
    const logits = this.logits.slice(0, n);
    this.wall.steps++;
    this.wall.us += (performance.now() - t0) * 1000;
    return new Map([[LOGITS, logits]]);
  }

  copyBlock(src: number, dst: number): void {
    this.copies.push([src, dst]);
  }

  stats(): RankStats[] {
    return Array.from({ length: this.world }, (_, r) => {
      const s = new Float64Array(this.buffers.ctrl, STATS_AT + r * STAT_FIELDS * 8, STAT_FIELDS);
      return { allReduceUs: s[0], allGatherUs: s[1], sendUs: s[2], recvUs: s[3], calls: s[4], steps: s[5], stepUs: s[6], kvBytes: s[7], busyUs: s[8] };
    });
  }

  /** Steps run and their wall microseconds, as the main thread saw them. */
  wallTime(): { steps: number; us: number } {
    return { ...this.wall };
  }

  /** Stops the ranks (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctrl, W.CMD, CMD_QUIT);
    Atomics.add(this.ctrl, W.CMD_SEQ, 1);
    Atomics.notify(this.ctrl, W.CMD_SEQ);
    this.supervisor.ref(); // idle ranks were unref'd; while they shut down, `stopped` must be able to settle
    this.supervisor.postMessage("quit");
  }
}

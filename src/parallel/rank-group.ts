/**
 * The main thread's side of the ranks, as a BoundGraph: submit() writes a step into the
 * next of `depth` shared slots and wakes every rank without waiting; the returned
 * PendingStep's wait() blocks until all ranks are done with it (or one failed), then
 * reads the logits the last stage wrote into that slot. Up to `depth` steps may be in
 * flight (pipeline stages run different steps at once); they are waited in submission
 * order, which frees their slots in turn. forward() is submit + wait. KV block copies are
 * queued and travel with the next step (every rank applies them before it runs). After a
 * failure every call throws the same RankError: the ranks' KV caches are gone, so the
 * group cannot go on.
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

/** A submitted step: wait() blocks until the ranks are done and returns its logits [R, vocab]. */
export interface PendingStep {
  wait(): Float32Array;
}

export class RankGroupBound implements BoundGraph {
  private readonly ctrl: Int32Array;
  private copies: [number, number][] = [];
  private error: RankError | null = null;
  private closed = false;
  /** Steps submitted, and how many of them have been waited (slots are reused in this order). */
  private submitted = 0;
  private collected = 0;
  /**
   * Steps submitted; wall microseconds with at least one step in flight (the stages' time
   * to keep busy); steps submitted while another was in flight.
   */
  private readonly wall = { steps: 0, us: 0, overlapped: 0 };
  private busySince = 0;
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

  /** Steps that may be in flight at once. */
  get depth(): number {
    return this.map.depth;
  }

  /** Steps submitted and not yet waited. */
  get inFlight(): number {
    return this.submitted - this.collected;
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    return new Map([[LOGITS, this.submit(step).wait()]]);
  }

  /** Posts a step to the ranks without waiting (at most `depth` in flight; wait them in order). */
  submit(step: StepBatch): PendingStep {
    if (this.closed) throw new LlmrtError("rank_failed", "sharded engine: closed");
    const failed = this.failure();
    if (failed) throw failed;
    if (this.inFlight >= this.depth) throw new Error(`sharded engine: ${this.depth} steps already in flight; wait for one first`);
    const slot = this.submitted % this.depth;
    const words = this.map.l.stepWords;
    encodeStep(new Int32Array(this.buffers.step, slot * words * 4, words), step, this.copies);
    this.copies = [];
    if (this.inFlight === 0) this.busySince = performance.now();
    else this.wall.overlapped++;
    Atomics.store(this.ctrl, W.DONE + slot, 0);
    const ticket = this.submitted++;
    this.wall.steps++;
    Atomics.add(this.ctrl, W.CMD_SEQ, 1);
    Atomics.notify(this.ctrl, W.CMD_SEQ);
    const rows = step.logitRows.length;
    return { wait: () => this.wait(ticket, slot, rows) };
  }

  private wait(ticket: number, slot: number, rows: number): Float32Array {
    if (ticket !== this.collected) throw new Error(`sharded engine: steps are waited in submission order (step ${ticket} before ${this.collected})`);
    const failed = this.failure();
    if (failed) throw failed;
    try {
      for (let done = 0; done < this.world; done = Atomics.load(this.ctrl, W.DONE + slot)) waitChange(this.ctrl, W.DONE + slot, done, this.spin);
    } catch (e) {
      if (e instanceof PeerFailed) throw this.failure()!;
      throw e;
    }
    const at = this.map.logitsOf(slot) * 4;
    const logits = new Float32Array(this.buffers.data, at, rows * this.vocab).slice();
    this.collected++;
    if (this.inFlight === 0) this.wall.us += (performance.now() - this.busySince) * 1000;
    return logits;
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

  /**
   * Steps run, the wall microseconds with a step in flight (main thread's view), and the
   * steps submitted while another was still in flight (cross-step pipelining).
   */
  wallTime(): { steps: number; us: number; overlapped: number } {
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

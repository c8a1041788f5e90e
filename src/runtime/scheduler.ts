/**
 * Token-budget scheduling with one code path (vLLM v1 style): no prefill or decode
 * phase. Each step hands up to `maxBatchTokens` tokens to running sequences first
 * (a decode needs 1, an unfinished prefill its next chunk), then admits waiting ones
 * up to `maxSeqs`. Long prompts are chunked across steps. When KV blocks run out the
 * lowest-priority running sequence is preempted (its blocks freed, recomputed later).
 * A newly admitted sequence first takes whatever prefix of it the block pool has cached.
 *
 * Step groups (for engines that run several steps at once, pipeline stages on different
 * batches): `schedule(g, groups)` serves only the running sequences of group g, admits
 * waiting ones into g up to its fair share of the sequences, and preempts only within g.
 * The caller schedules a group only when its previous step is sampled, so no sequence
 * of another group (possibly in flight) is touched. With one group, everything is one.
 */
import type { BlockPool } from "./kv-cache.js";
import type { Sequence } from "./sequence.js";
import type { ScheduledSlice } from "./step-builder.js";

export interface SchedulerOptions {
  /** Tokens per step across all sequences. */
  maxBatchTokens: number;
  /** Sequences running at once. */
  maxSeqs: number;
  /**
   * With step groups: sequences group 0 (then 1, ...) must hold before the next group takes
   * any (default 1). A smaller group's step costs a stage nearly what a full one does.
   */
  minGroupSeqs?: number;
}

/** What the scheduler needs of a request: its sequence, and an order of service. */
export interface Schedulable {
  seq: Sequence;
  /** Lower is served first (default 0). */
  priority: number;
  /** Monotonic arrival stamp; breaks priority ties first-come first-served. */
  arrival: number;
}

export interface SchedulerOutput<R> {
  slices: (ScheduledSlice & { req: R })[];
  /** Requests preempted in this step (their KV was dropped; they wait again). */
  preempted: R[];
}

const before = (a: Schedulable, b: Schedulable) => a.priority - b.priority || a.arrival - b.arrival;

export class Scheduler<R extends Schedulable> {
  readonly waiting: R[] = [];
  readonly running: R[] = [];
  numPreemptions = 0;
  /** The step group of each running request (absent: group 0). */
  private readonly groupOf = new Map<R, number>();

  constructor(
    private readonly pool: BlockPool,
    readonly opts: SchedulerOptions,
  ) {}

  add(req: R): void {
    req.seq.status = "waiting";
    insertSorted(this.waiting, req);
  }

  /**
   * Takes a request out of the scheduler, freeing its blocks at once unless `keepBlocks`
   * (its step is still in flight: the caller releases them once that step is done).
   */
  remove(req: R, keepBlocks = false): void {
    for (const list of [this.waiting, this.running]) {
      const i = list.indexOf(req);
      if (i >= 0) list.splice(i, 1);
    }
    this.groupOf.delete(req);
    if (!keepBlocks) this.pool.release(req.seq);
  }

  /** The step group a running request belongs to. */
  group(req: R): number {
    return this.groupOf.get(req) ?? 0;
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** The next step of step group `group` of `groups` (one group: every running sequence). */
  schedule(group = 0, groups = 1): SchedulerOutput<R> {
    let budget = this.opts.maxBatchTokens;
    const slices: SchedulerOutput<R>["slices"] = [];
    const preempted: R[] = [];

    // running sequences of the group first, in priority order; its worst ones are preempted when blocks run out
    this.running.sort(before);
    const mine = groups === 1 ? this.running : this.running.filter((r) => this.group(r) === group);
    const drop = (req: R) => {
      if (mine !== this.running) this.running.splice(this.running.indexOf(req), 1);
      return this.preempt(req);
    };
    for (let i = 0; i < mine.length && budget > 0; i++) {
      const req = mine[i];
      const n = Math.min(req.seq.numUncomputed + req.seq.draft.length, budget);
      if (n === 0) continue;
      let fits = this.pool.reserve(req.seq, req.seq.numComputed + n);
      while (!fits && mine.length - 1 > i) {
        preempted.push(drop(mine.pop()!));
        fits = this.pool.reserve(req.seq, req.seq.numComputed + n);
      }
      if (!fits) {
        // nothing left to take blocks from but this request itself
        mine.splice(i, 1);
        preempted.push(drop(req));
        break;
      }
      slices.push(this.slice(req, n));
      budget -= n;
    }

    // then waiting ones, unless this step already had to preempt: into this group up to its
    // fair share (at least minGroupSeqs), and only once every earlier group holds minGroupSeqs
    const least = groups === 1 ? 1 : (this.opts.minGroupSeqs ?? 1);
    const share = Math.max(least, Math.ceil(Math.min(this.opts.maxSeqs, this.running.length + this.waiting.length) / groups));
    const sizes = new Array<number>(groups).fill(0);
    for (const r of this.running) sizes[this.group(r)]++;
    const open = sizes.slice(0, group).every((n) => n >= least);
    let members = mine.length;
    while (open && preempted.length === 0 && budget > 0 && this.waiting.length > 0 && this.running.length < this.opts.maxSeqs && members < share) {
      const req = this.waiting[0];
      const reused = this.pool.acquirePrefix(req.seq);
      const n = Math.min(req.seq.numUncomputed, budget);
      if (!this.pool.reserve(req.seq, req.seq.numComputed + n)) {
        this.pool.release(req.seq); // give the prefix back; try again next step
        req.seq.numComputed = 0;
        break;
      }
      this.pool.recordLookup(req.seq.numTokens, reused);
      this.waiting.shift();
      req.seq.status = "running";
      this.running.push(req);
      this.groupOf.set(req, group);
      members++;
      slices.push(this.slice(req, n));
      budget -= n;
    }
    return { slices, preempted };
  }

  private slice(req: R, numNew: number): ScheduledSlice & { req: R } {
    const seq = req.seq;
    const promptLogits = seq.wantsPromptLogits && seq.numComputed < seq.promptLen - 1;
    // drafts ride along only behind the last real token, as far as the budget allows
    const numDraft = Math.max(0, numNew - seq.numUncomputed);
    seq.draft.length = numDraft;
    const wantLogits = seq.numComputed + numNew - numDraft === seq.numTokens;
    return { req, seq, numNew, wantLogits, promptLogits, numDraft };
  }

  /** Recompute-style preemption: drop the KV, keep the tokens, wait again. */
  private preempt(req: R): R {
    this.groupOf.delete(req);
    this.pool.release(req.seq);
    req.seq.numComputed = 0;
    req.seq.draft = [];
    this.numPreemptions++;
    this.add(req);
    return req;
  }
}

function insertSorted<R extends Schedulable>(list: R[], req: R): void {
  let i = list.length;
  while (i > 0 && before(req, list[i - 1]) < 0) i--;
  list.splice(i, 0, req);
}

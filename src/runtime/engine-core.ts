/**
 * The engine core: one synchronous `step()` schedules a token budget over the
 * requests, runs the engine once on the packed StepBatch, samples the rows that need
 * a token, and reports what changed. It never awaits, so it can run on any thread;
 * the API layer drives it (and yields to the event loop between steps).
 *
 * An engine with `pipelineDepth` d > 1 (pipeline stages that run different steps at
 * once) gets d step groups: the running sequences are split among them, and each
 * `step()` first submits the next step of every group that has none in flight, then
 * waits for the oldest one and samples it. A group's next step is scheduled only after
 * its previous one is sampled, so no sequence ever has two steps in flight; a request
 * cancelled while its step is in flight keeps its KV blocks until that step is done.
 */
import type { Engine, PendingLogits } from "../engine/engine.js";
import type { StepBatch } from "../graph/step-batch.js";
import { OptionError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { BlockPool } from "./kv-cache.js";
import { Request, type FinishReason, type TokenLogprob } from "./request.js";
import type { SamplingParams } from "./sampling-params.js";
import { Scheduler } from "./scheduler.js";
import { buildStep, sliceLogitRows, type ScheduledSlice } from "./step-builder.js";
import { noFinite, selectTopK } from "./sampler.js";
import { isStopToken } from "./stop.js";
import type { SpeculativeConfig } from "./speculative/config.js";
import { DraftRunner } from "./speculative/draft-runner.js";
import { proposeNgram } from "./speculative/ngram.js";
import { verifyDrafts } from "./speculative/verify.js";

export interface EngineCoreOptions {
  /** Tokens per step across all sequences (default 512). */
  maxBatchTokens?: number;
  /** Sequences in flight at once (default 16). */
  maxSeqs?: number;
  /** Reuse cached KV blocks of shared prompt prefixes (default true). */
  enablePrefixCaching?: boolean;
  /** Speculative decoding; a "draft" method needs `draftEngine` (same vocabulary as the target). */
  speculative?: SpeculativeConfig;
  draftEngine?: Engine;
}

export interface RequestUpdate {
  id: string;
  newTokenIds: number[];
  newText: string;
  newLogprobs: TokenLogprob[];
  finished: boolean;
  finishReason: FinishReason | null;
  request: Request;
}

export interface CoreStats {
  running: number;
  waiting: number;
  kvBlocksTotal: number;
  kvBlocksFree: number;
  kvUsage: number;
  numPreemptions: number;
  /** Prompt tokens looked up in the prefix cache, and how many were found. */
  prefixQueries: number;
  prefixHits: number;
  prefixHitRate: number;
  /** Speculative decoding: drafts proposed and accepted; accepted / proposed; tokens emitted per verification. */
  specDraftTokens: number;
  specAcceptedTokens: number;
  /** Verification steps of one sequence (vLLM's "drafts"). */
  specVerifications: number;
  specAcceptanceRate: number;
  specMeanAcceptedLength: number;
  steps: number;
}

export class EngineCore {
  readonly pool: BlockPool;
  readonly scheduler: Scheduler<Request>;
  private readonly byId = new Map<string, Request>();
  /** Requests waiting for a parent's prompt to be computed, by parent id. */
  private readonly deferred = new Map<string, Request[]>();
  private readonly speculative?: SpeculativeConfig;
  private readonly drafter?: DraftRunner;
  /** Speculative decoding counters: drafts proposed and accepted, verification steps. */
  private readonly spec = { proposed: 0, accepted: 0, steps: 0 };
  private readonly eos: ReadonlySet<number>;
  private steps = 0;
  /** Step groups (engine.pipelineDepth; 1 with speculative decoding, whose drafts span groups). */
  private readonly groups: number;
  /** Submitted steps not yet sampled, oldest first, and the requests they hold. */
  private readonly inFlight: InFlightStep[] = [];
  private readonly busy = new Set<Request>();

  constructor(
    readonly engine: Engine,
    readonly tokenizer: Tokenizer,
    opts: EngineCoreOptions = {},
  ) {
    this.pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, opts.enablePrefixCaching ?? true);
    this.speculative = opts.speculative;
    if (opts.speculative?.method === "draft") {
      const d = opts.draftEngine;
      if (!d) throw new OptionError("--speculative", `draft model ${opts.speculative.model} was not loaded`);
      if (d.config.vocabSize !== engine.config.vocabSize) {
        throw new OptionError("--speculative", `the draft model's vocabulary (${d.config.vocabSize}) differs from the target's (${engine.config.vocabSize})`, "pick a draft model with the target's tokenizer");
      }
      this.drafter = new DraftRunner(d, opts.speculative.k);
    }
    this.scheduler = new Scheduler(this.pool, {
      maxBatchTokens: opts.maxBatchTokens ?? 512,
      maxSeqs: opts.maxSeqs ?? 16,
      minGroupSeqs: engine.pipelineMinGroupSeqs,
    });
    this.eos = new Set([...engine.config.eosTokenIds, ...tokenizer.eosIds]);
    this.groups = opts.speculative ? 1 : Math.max(1, engine.pipelineDepth);
  }

  /** Longest prompt + output a request may reach. */
  get maxSeqLen(): number {
    return Math.min(this.engine.maxSeqLen, this.pool.numBlocks * this.pool.blockSize);
  }

  /**
   * Queues a request. With `after`, it waits until request `after` has computed the same
   * prompt, then shares those KV blocks (the n samples of one prompt do this).
   */
  addRequest(id: string, promptIds: readonly number[], params: SamplingParams, priority = 0, stream = 0, after?: string): Request {
    if (this.byId.has(id)) throw new OptionError("request id", `"${id}" is already in flight`);
    if (promptIds.length === 0) throw new OptionError("prompt", "is empty (no tokens, not even BOS)", "pass some text or enable BOS");
    if (promptIds.length >= this.maxSeqLen) {
      throw new OptionError(
        "prompt",
        `has ${promptIds.length} tokens; this engine holds at most ${this.maxSeqLen} tokens per sequence (prompt + output)`,
        "shorten the prompt or build with a larger --max-seq-len",
      );
    }
    const V = this.engine.config.vocabSize;
    const bad = promptIds.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
    if (bad !== undefined) throw new OptionError("prompt", `token id ${bad} is outside the vocabulary [0, ${V})`);
    // checked here, not inside a step, where one bad request would fail the whole batch
    const badBias = Object.keys(params.logitBias).map(Number).find((t) => t >= V);
    if (badBias !== undefined) throw new OptionError("logitBias", `token id ${badBias} is outside the vocabulary [0, ${V})`);
    const req = new Request(id, promptIds, params, this.tokenizer, priority, stream);
    this.byId.set(id, req);
    const parent = after === undefined ? undefined : this.byId.get(after);
    if (parent && parent.seq.numOutput === 0 && this.pool.prefixCaching) {
      const kids = this.deferred.get(parent.id) ?? [];
      kids.push(req);
      this.deferred.set(parent.id, kids);
    } else {
      this.scheduler.add(req);
    }
    return req;
  }

  /** Cancels a request; its KV blocks are freed at once. Returns its final update, or null if unknown. */
  abort(id: string): RequestUpdate | null {
    const req = this.byId.get(id);
    if (!req) return null;
    return this.finish(req, "abort", newUpdate(req));
  }

  /** Frees the engines (and a draft model's) that this core runs; nothing can run afterwards. */
  closeEngines(): void {
    this.engine.close();
    this.drafter?.engine.close();
  }

  /** Steps submitted to a pipelined engine and not yet sampled (0 otherwise). */
  get stepsInFlight(): number {
    return this.inFlight.length;
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork || this.deferred.size > 0 || this.inFlight.length > 0;
  }

  stats(): CoreStats {
    const total = this.pool.numBlocks;
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kvBlocksTotal: total,
      kvBlocksFree: this.pool.numFree,
      kvUsage: (total - this.pool.numFree) / total,
      numPreemptions: this.scheduler.numPreemptions,
      prefixQueries: this.pool.prefixStats.queries,
      prefixHits: this.pool.prefixStats.hits,
      prefixHitRate: this.pool.prefixStats.queries === 0 ? 0 : this.pool.prefixStats.hits / this.pool.prefixStats.queries,
      specDraftTokens: this.spec.proposed,
      specAcceptedTokens: this.spec.accepted,
      specVerifications: this.spec.steps,
      specAcceptanceRate: this.spec.proposed === 0 ? 0 : this.spec.accepted / this.spec.proposed,
      specMeanAcceptedLength: this.spec.steps === 0 ? 0 : (this.spec.accepted + this.spec.steps) / this.spec.steps,
      steps: this.steps,
    };
  }

  /** Runs one step. Returns an update for every request that produced a token or finished. */
  step(): RequestUpdate[] {
    if (this.groups > 1) return this.pipelinedStep();
    this.propose();
    const { slices } = this.scheduler.schedule();
    if (slices.length === 0) return [];
    const batch = this.startStep(slices);
    // every sampled token a plain argmax: the backend picks it where the logits are, and no row is read here
    const greedy = this.engine.hasDeviceGreedy && slices.every(deviceGreedyFits) ? this.engine.forwardGreedy(batch) : null; // [R]
    const logits = greedy ? null : this.engine.forward(batch); // [R, vocab]
    return this.sampleStep(slices, logits, greedy);
  }

  /**
   * One step of a pipelined engine: submits the next step of every idle group, then
   * waits for the oldest step in flight and samples it (its group is idle again).
   */
  private pipelinedStep(): RequestUpdate[] {
    for (let g = 0; g < this.groups; g++) {
      if (this.inFlight.some((f) => f.group === g)) continue;
      const { slices } = this.scheduler.schedule(g, this.groups);
      if (slices.length === 0) continue;
      const pending = this.engine.submit(this.startStep(slices));
      this.inFlight.push({ group: g, slices, pending });
      for (const s of slices) this.busy.add(s.req);
    }
    const oldest = this.inFlight.shift();
    if (!oldest) return [];
    let logits: Float32Array;
    try {
      logits = oldest.pending.wait();
    } catch (e) {
      // a failed engine runs nothing more: the steps left will never be waited, so nothing is busy now
      for (const f of [oldest, ...this.inFlight]) for (const s of f.slices) if (s.req.finished) this.pool.release(s.req.seq);
      this.inFlight.length = 0;
      this.busy.clear();
      throw e;
    }
    for (const s of oldest.slices) {
      this.busy.delete(s.req);
      if (s.req.finished) this.pool.release(s.req.seq); // cancelled in flight: its blocks are free only now
    }
    return this.sampleStep(oldest.slices.filter((s) => !s.req.finished), logits, null, oldest.slices);
  }

  private startStep(slices: Slice[]): StepBatch {
    this.steps++;
    const now = performance.now();
    for (const s of slices) s.req.timings.firstScheduled ??= now;
    return buildStep(slices, this.pool.blockSize);
  }

  /**
   * Consumes a finished step's logits (or device-picked tokens): prompt logprobs, sampled
   * tokens, stop rules. `rowsOf` lists every slice the step ran (default `slices`): rows of
   * a slice left out (its request was cancelled in flight) are skipped.
   */
  private sampleStep(slices: Slice[], logits: Float32Array | null, greedy: Int32Array | null, rowsOf: Slice[] = slices): RequestUpdate[] {
    const V = this.engine.config.vocabSize;
    const rowStart = new Map<Slice, number>();
    for (let i = 0, r = 0; i < rowsOf.length; i++) {
      rowStart.set(rowsOf[i], r);
      const { promptRows, sampleRows } = sliceLogitRows(rowsOf[i]);
      r += promptRows + sampleRows;
    }

    const updates: RequestUpdate[] = [];
    const rowAt = (r: number) => logits!.subarray(r * V, (r + 1) * V);
    for (const slice of slices) {
      let row = rowStart.get(slice)!;
      const { req, numNew } = slice;
      const numDraft = slice.numDraft ?? 0;
      const { promptRows, sampleRows } = sliceLogitRows(slice);
      for (let r = 0; r < promptRows; r++, row++) {
        const pos = req.seq.numComputed + r; // this row predicts token pos + 1
        if (req.promptLogprobs.length !== pos) continue; // recomputed after a preemption
        req.promptLogprobs.push(tokenLogprob(rowAt(row), req.seq.tokens[pos + 1], req.params.promptLogprobs!));
      }
      req.seq.numComputed += numNew - numDraft;
      if (greedy && sampleRows > 0) {
        updates.push(this.emitPicked(req, greedy[row++]));
        this.releaseDeferred(req.id);
      } else if (sampleRows > 0) {
        const rows = Array.from({ length: sampleRows }, (_, i) => rowAt(row + i));
        row += sampleRows;
        updates.push(numDraft > 0 ? this.verify(req, rows) : this.sampleOne(req, rows[0]));
        this.releaseDeferred(req.id);
      }
      req.seq.draft = [];
      if (!req.finished) this.pool.commitFull(req.seq);
    }
    return updates;
  }

  /** A token the backend picked (-1: the row had no finite logit). */
  private emitPicked(req: Request, token: number): RequestUpdate {
    if (token < 0) throw noFinite();
    req.sampler.accept(token);
    return this.emit(req, token, undefined);
  }

  private sampleOne(req: Request, row: Float32Array): RequestUpdate {
    const r = req.sampler.sample(row);
    return this.emit(req, r.token, r.logprob === undefined ? undefined : { token: r.token, logprob: r.logprob, top: r.topLogprobs });
  }

  /** Keeps the longest accepted run of this step's drafts plus one target token (see speculative/verify.ts). */
  private verify(req: Request, rows: Float32Array[]): RequestUpdate {
    const drafts = req.seq.draft;
    const u = newUpdate(req);
    const lpN = req.params.logprobs;
    const { accepted } = verifyDrafts(req.sampler, req.sampler.rng, rows, drafts, req.draftQ ?? drafts.map(() => null), (token, row) => {
      this.emit(req, token, lpN === null ? undefined : tokenLogprob(row, token, lpN), u);
      return !req.finished;
    });
    // the accepted drafts' K/V were computed in this step
    req.seq.numComputed += accepted;
    this.spec.proposed += drafts.length;
    this.spec.accepted += accepted;
    this.spec.steps++;
    req.draftQ = undefined;
    return u;
  }

  /** Proposes speculative tokens for every running sequence that is decoding. */
  private propose(): void {
    const cfg = this.speculative;
    if (!cfg) return;
    const decoding = this.scheduler.running.filter((r) => r.seq.numUncomputed === 1);
    const room = (r: Request) => Math.max(0, Math.min(r.params.maxTokens - r.seq.numOutput, this.maxSeqLen - r.seq.numTokens) - 1);
    if (cfg.method === "ngram") {
      for (const r of decoding) r.seq.draft = proposeNgram(r.seq.tokens, Math.min(cfg.k, room(r)), cfg.n);
      return;
    }
    const props = this.drafter!.propose(decoding.filter((r) => room(r) > 0));
    for (const [r, p] of props) {
      const n = Math.min(p.drafts.length, room(r));
      r.seq.draft = p.drafts.slice(0, n);
      r.draftQ = p.q.slice(0, n);
    }
  }

  /** Siblings wait until their parent's prompt is computed, then reuse its KV blocks through the prefix cache. */
  private releaseDeferred(parentId: string): void {
    const kids = this.deferred.get(parentId);
    if (!kids) return;
    this.deferred.delete(parentId);
    for (const k of kids) this.scheduler.add(k);
  }

  /** Appends a sampled token to `u` (a fresh update by default) and applies every stop rule. */
  private emit(req: Request, token: number, lp: TokenLogprob | undefined, u: RequestUpdate = newUpdate(req)): RequestUpdate {
    req.timings.firstToken ??= performance.now();
    req.seq.tokens.push(token);
    u.newTokenIds.push(token);
    if (lp) {
      req.logprobs.push(lp);
      u.newLogprobs.push(lp);
    }
    if (isStopToken(token, req.params, this.eos)) {
      req.stopReason = token;
      return this.finish(req, "stop", u, req.stop.flush());
    }
    const st = req.stop.push(req.detok.push(token));
    if (st.stopped) {
      req.stopReason = st.stop ?? null;
      return this.finish(req, "stop", u, st.text);
    }
    const done = req.constraintFinish(token); // structured output complete (or impossible to continue)
    if (done !== null) return this.finish(req, done, u, st.text + req.stop.push(req.detok.flush()).text + req.stop.flush());
    if (req.seq.numOutput >= req.params.maxTokens || req.seq.numTokens >= this.maxSeqLen) {
      return this.finish(req, "length", u, st.text + req.stop.push(req.detok.flush()).text + req.stop.flush());
    }
    req.text += st.text;
    u.newText += st.text;
    return u;
  }

  private finish(req: Request, reason: FinishReason, u: RequestUpdate, lastText = ""): RequestUpdate {
    this.releaseDeferred(req.id); // a parent aborted before its first token must not strand its siblings
    for (const [parent, kids] of this.deferred) {
      const i = kids.indexOf(req);
      if (i >= 0) kids.splice(i, 1);
      if (kids.length === 0) this.deferred.delete(parent);
    }
    this.drafter?.release(req);
    req.text += lastText;
    u.newText += lastText;
    req.finishReason = reason;
    req.timings.finished = performance.now();
    this.scheduler.remove(req, this.busy.has(req)); // a step in flight may still write its KV blocks
    this.byId.delete(req.id);
    u.finished = true;
    u.finishReason = reason;
    return u;
  }
}

type Slice = ScheduledSlice & { req: Request };

/** A step submitted to a pipelined engine and not yet sampled. */
interface InFlightStep {
  group: number;
  slices: Slice[];
  pending: PendingLogits;
}

function newUpdate(req: Request): RequestUpdate {
  return { id: req.id, newTokenIds: [], newText: "", newLogprobs: [], finished: false, finishReason: null, request: req };
}

/** log P(token) under one logits row, with the `top` most likely alternatives. */
function tokenLogprob(row: Float32Array, token: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const out: TokenLogprob = { token, logprob: row[token] - lse };
  if (top > 0) {
    const ids = new Int32Array(Math.min(top, row.length));
    selectTopK(row, row.length, ids.length, ids);
    out.top = Array.from(ids, (t) => ({ token: t, logprob: row[t] - lse }));
  }
  return out;
}

/** A slice whose token (if it samples one) is the plain argmax: no prompt logprobs, drafts, or anything that reads the row. */
function deviceGreedyFits(s: ScheduledSlice & { req: Request }): boolean {
  return !s.promptLogits && !s.numDraft && (!s.wantLogits || s.req.sampler.plainGreedy);
}

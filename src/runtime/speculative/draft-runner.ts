/**
 * Draft-model proposals for speculative decoding. The draft engine keeps its own KV
 * cache and a shadow sequence per request; each target step it catches up on the
 * request's new tokens, then proposes k tokens autoregressively, one batched draft
 * forward per proposed position. Proposals the target rejects are dropped by
 * rolling the shadow sequence back to the tokens both agree on.
 */
import type { Engine } from "../../engine/engine.js";
import { BlockPool } from "../kv-cache.js";
import type { Request } from "../request.js";
import { Sampler } from "../sampler.js";
import { Sequence } from "../sequence.js";
import { buildStep, type ScheduledSlice } from "../step-builder.js";
import type { DraftDist } from "./verify.js";

export interface Proposal {
  drafts: number[];
  q: DraftDist[];
}

interface Shadow {
  seq: Sequence;
  sampler: Sampler;
}

export class DraftRunner {
  private readonly pool: BlockPool;
  private readonly shadows = new Map<Request, Shadow>();

  constructor(
    readonly engine: Engine,
    readonly k: number,
  ) {
    this.pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false);
  }

  /** Up to `k` proposals for each request (fewer, or none, when the draft's KV is short). */
  propose(reqs: readonly Request[], k = this.k): Map<Request, Proposal> {
    const out = new Map<Request, Proposal>();
    const active: { sh: Shadow; prop: Proposal }[] = [];
    for (const req of reqs) {
      if (req.seq.numTokens + k > this.engine.maxSeqLen) continue; // past the draft model's context
      const sh = this.sync(req);
      if (!this.pool.reserve(sh.seq, sh.seq.numTokens + k)) continue;
      const prop: Proposal = { drafts: [], q: [] };
      out.set(req, prop);
      active.push({ sh, prop });
    }
    this.catchUp(active.map((a) => a.sh));
    const V = this.engine.config.vocabSize;
    for (let round = 0; round < k && active.length > 0; round++) {
      const slices: ScheduledSlice[] = active.map(({ sh }) => ({ seq: sh.seq, numNew: 1, wantLogits: true }));
      const logits = this.engine.forward(buildStep(slices, this.pool.blockSize)); // [active, vocab]
      active.forEach(({ sh, prop }, i) => {
        const row = logits.subarray(i * V, (i + 1) * V);
        const dist = sh.sampler.distribution(row);
        const d = sh.sampler.sample(row, { record: false }).token;
        prop.drafts.push(d);
        prop.q.push(new Map(Array.from(dist.ids, (id, j) => [id, dist.probs[j]])));
        sh.seq.numComputed++;
        sh.seq.tokens.push(d);
      });
    }
    return out;
  }

  /** Forgets a finished request's shadow and frees its draft KV. */
  release(req: Request): void {
    const sh = this.shadows.get(req);
    if (!sh) return;
    this.pool.release(sh.seq);
    this.shadows.delete(req);
  }

  /** Makes the shadow's tokens equal the request's, keeping KV only for the prefix both agree on. */
  private sync(req: Request): Shadow {
    let sh = this.shadows.get(req);
    if (!sh) {
      const params = { ...req.params, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logitBias: {}, logprobs: null };
      sh = { seq: new Sequence(req.seq.id, req.seq.tokens), sampler: new Sampler(params, { stream: 1000 + req.seq.id }) };
      this.shadows.set(req, sh);
      return sh;
    }
    const mine = sh.seq.tokens;
    const theirs = req.seq.tokens;
    let c = 0;
    while (c < mine.length && c < theirs.length && mine[c] === theirs[c]) c++;
    mine.length = c;
    for (let i = c; i < theirs.length; i++) mine.push(theirs[i]);
    // the last token is always fed again, so its logits exist
    sh.seq.numComputed = Math.min(sh.seq.numComputed, c, mine.length - 1);
    return sh;
  }

  /** Feeds each shadow all but its last uncomputed token, within the draft engine's step size. */
  private catchUp(active: readonly Shadow[]): void {
    const budget = Math.min(this.engine.maxBatchTokens, 4096);
    for (;;) {
      const slices: ScheduledSlice[] = [];
      let left = budget;
      for (const sh of active) {
        const n = Math.min(sh.seq.numUncomputed - 1, left);
        if (n <= 0) continue;
        slices.push({ seq: sh.seq, numNew: n, wantLogits: false });
        left -= n;
      }
      if (slices.length === 0) return;
      this.engine.forward(buildStep(slices, this.pool.blockSize));
      for (const s of slices) s.seq.numComputed += s.numNew;
    }
  }
}

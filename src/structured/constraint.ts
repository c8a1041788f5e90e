/**
 * A compiled constraint (automaton + vocabulary, masks cached per automaton state;
 * shared by every request with the same spec) and the per-request cursor over it.
 */
import { LlmrtError } from "../errors.js";
import type { ByteMachine } from "./machine.js";
import { Lru } from "./lru.js";
import type { ConstraintSpec } from "./spec.js";
import { computeMask, maskHas, type TokenMask } from "./token-mask.js";
import type { VocabIndex } from "./vocab-index.js";

/** Masks kept per constraint (a 32k-vocab mask is 4 KiB of bits). */
const MASK_CACHE = 4096;

export interface MaskStats {
  /** Masks computed (cache misses) and the time they took. */
  computed: number;
  computeMs: number;
  /** Mask lookups that hit the cache. */
  hits: number;
}

export class CompiledConstraint<S = unknown> {
  readonly stats: MaskStats = { computed: 0, computeMs: 0, hits: 0 };
  private readonly masks = new Lru<string | number, TokenMask>(MASK_CACHE);

  constructor(
    readonly spec: ConstraintSpec,
    readonly machine: ByteMachine<S>,
    readonly vocab: VocabIndex,
  ) {}

  /** Tokens allowed in `state` (end-of-text tokens aside). */
  mask(state: S): TokenMask {
    const k = this.machine.key(state);
    let m = this.masks.get(k);
    if (m !== undefined) {
      this.stats.hits++;
      return m;
    }
    const t0 = performance.now();
    m = computeMask(this.vocab.trie, this.machine, state, this.vocab.vocabSize);
    this.stats.computeMs += performance.now() - t0;
    this.stats.computed++;
    this.masks.set(k, m);
    return m;
  }

  /** The state after `token`'s bytes, or null when the token is not allowed there. */
  next(state: S, token: number): S | null {
    const b = this.vocab.bytes[token];
    if (b === null || b === undefined) return null;
    let s: S | null = state;
    for (let i = 0; i < b.length && s !== null; i++) s = this.machine.step(s, b[i]);
    return s;
  }

  /**
   * A cursor at the start. `endIds` are the tokens that end generation (default: the
   * tokenizer's EOS list); they are allowed exactly in accepting states.
   */
  start(endIds: readonly number[] = this.vocab.eosIds): ConstraintState<S> {
    return new ConstraintState(this, this.machine.initial, Int32Array.from(new Set(endIds)));
  }
}

export type ConstraintStatus = "continue" | "complete" | "stuck";

let kept = new Float32Array(0); // logits of allowed tokens while the row is reset

/** Where one output stands in a constraint. Cheap to clone (speculative drafts, beams). */
export class ConstraintState<S = unknown> {
  private cached: TokenMask | null = null;
  private ended = false;

  constructor(
    readonly compiled: CompiledConstraint<S>,
    private state: S,
    readonly endIds: Int32Array,
  ) {}

  /** The output so far is a complete match. */
  get accepting(): boolean {
    return this.compiled.machine.accepting(this.state);
  }

  /** Non-end tokens allowed next. */
  get mask(): TokenMask {
    return (this.cached ??= this.compiled.mask(this.state));
  }

  /**
   * "complete": a full match and nothing may follow (generation should stop);
   * "stuck": not a match, and no token of this vocabulary can continue it;
   * "continue": otherwise.
   */
  status(): ConstraintStatus {
    if (this.ended) return "complete";
    if (this.mask.count > 0) return "continue";
    return this.accepting ? "complete" : "stuck";
  }

  /** Whether `token` may be sampled next. */
  allows(token: number): boolean {
    if (this.endIds.includes(token)) return this.accepting;
    return !this.ended && token < this.compiled.vocab.vocabSize && maskHas(this.mask, token);
  }

  /** Sets every token that may not come next to -Infinity (x: one logits row, modified in place). */
  applyMask(x: Float32Array): void {
    const m = this.mask;
    const ends = this.endIds;
    const endVals = Array.from(ends, (e) => x[e]);
    if (m.ids !== null) {
      if (kept.length < m.ids.length) kept = new Float32Array(m.ids.length);
      for (let k = 0; k < m.ids.length; k++) kept[k] = x[m.ids[k]];
      x.fill(-Infinity);
      for (let k = 0; k < m.ids.length; k++) x[m.ids[k]] = kept[k];
    } else {
      const bits = m.bits;
      const covered = Math.min(x.length, bits.length << 5);
      for (let w = 0; w < bits.length; w++) {
        const word = bits[w];
        if (word === 0xffffffff) continue;
        const base = w << 5;
        for (let j = 0; j < 32 && base + j < covered; j++) if (((word >>> j) & 1) === 0) x[base + j] = -Infinity;
      }
      if (x.length > covered) x.fill(-Infinity, covered); // model rows wider than the tokenizer
    }
    const acc = this.accepting && !this.ended;
    for (let i = 0; i < ends.length; i++) if (ends[i] < x.length) x[ends[i]] = acc ? endVals[i] : -Infinity;
  }

  /** Moves past `token`. Throws when the token was not allowed (a masking bug, not bad input). */
  advance(token: number): void {
    if (this.endIds.includes(token) && this.accepting) {
      this.ended = true;
      return;
    }
    const next = this.ended ? null : this.compiled.next(this.state, token);
    if (next === null) throw new LlmrtError("constraint", `token ${token} is not allowed by the ${this.compiled.spec.type} constraint at this point`, "sample only tokens that applyMask leaves finite");
    this.state = next;
    this.cached = null;
  }

  clone(): ConstraintState<S> {
    const c = new ConstraintState(this.compiled, this.state, this.endIds);
    c.cached = this.cached;
    c.ended = this.ended;
    return c;
  }
}

/**
 * One sample stream being generated: its sequence, sampler, detokenizer, stop
 * checker and timings. (A request for n samples is n of these.)
 */
import type { Tokenizer } from "../tokenizer/types.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import { compileConstraint } from "../structured/compile.js";
import type { ConstraintState } from "../structured/constraint.js";
import { Sampler, type TopLogprob } from "./sampler.js";
import type { SamplingParams } from "./sampling-params.js";
import type { Schedulable } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { StopChecker } from "./stop.js";
import type { DraftDist } from "./speculative/verify.js";

export type FinishReason = "stop" | "length" | "abort";

export interface TokenLogprob {
  token: number;
  logprob: number;
  top?: TopLogprob[];
}

export interface RequestTimings {
  /** performance.now() when the request arrived. */
  arrival: number;
  /** When it was first scheduled. */
  firstScheduled?: number;
  /** When its first output token was sampled. */
  firstToken?: number;
  /** When it finished. */
  finished?: number;
}

let arrivalCounter = 0;

export class Request implements Schedulable {
  readonly seq: Sequence;
  readonly sampler: Sampler;
  readonly detok: IncrementalDetokenizer;
  readonly stop: StopChecker;
  /** Structured output: where the text stands in params.constraint (null without one). */
  readonly constraint: ConstraintState | null;
  readonly arrival = arrivalCounter++;
  readonly timings: RequestTimings = { arrival: performance.now() };
  readonly logprobs: TokenLogprob[] = [];
  /** Per prompt token after the first: its logprob given the tokens before it (when asked for). */
  readonly promptLogprobs: TokenLogprob[] = [];
  /** Proposal distributions of seq.draft (draft-model speculation; absent = point masses). */
  draftQ?: DraftDist[];
  /** Text emitted so far (stop strings excluded). */
  text = "";
  finishReason: FinishReason | null = null;
  /** The stop string or token that ended it, if any. */
  stopReason: string | number | null = null;

  constructor(
    readonly id: string,
    promptIds: readonly number[],
    readonly params: SamplingParams,
    tokenizer: Tokenizer,
    readonly priority = 0,
    stream = 0,
  ) {
    this.seq = new Sequence(this.arrival, promptIds);
    // compiled once per spec and tokenizer (cached); end tokens are allowed only where the text is a full match
    this.constraint = params.constraint ? compileConstraint(params.constraint, tokenizer).start([...tokenizer.eosIds, ...params.stopTokenIds]) : null;
    this.sampler = new Sampler(params, { promptTokens: promptIds, stream, mask: this.constraint ?? undefined });
    this.detok = new IncrementalDetokenizer(tokenizer, promptIds);
    this.stop = new StopChecker(params.stop);
    // skipped prefix tokens would have no logits, so such requests compute their whole prompt
    this.seq.wantsPromptLogits = params.promptLogprobs !== null;
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }

  /**
   * Moves the constraint past an emitted token: "stop" once the text is a complete match
   * that no token may extend, "abort" when no token of the vocabulary can continue it
   * (the constraint needs characters the vocabulary lacks), else null; null without one.
   */
  constraintFinish(token: number): FinishReason | null {
    const c = this.constraint;
    if (c === null) return null;
    c.advance(token);
    const s = c.status();
    return s === "continue" ? null : s === "complete" ? "stop" : "abort";
  }
}

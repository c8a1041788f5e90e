/**
 * One sample stream being generated: its sequence, sampler, detokenizer, stop
 * checker and timings. (A request for n samples is n of these.)
 */
import type { Tokenizer } from "../tokenizer/types.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import { Sampler, type TopLogprob } from "./sampler.js";
import type { SamplingParams } from "./sampling-params.js";
import type { Schedulable } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { StopChecker } from "./stop.js";

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
  readonly arrival = arrivalCounter++;
  readonly timings: RequestTimings = { arrival: performance.now() };
  readonly logprobs: TokenLogprob[] = [];
  /** Per prompt token after the first: its logprob given the tokens before it (when asked for). */
  readonly promptLogprobs: TokenLogprob[] = [];
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
    this.sampler = new Sampler(params, { promptTokens: promptIds, stream });
    this.detok = new IncrementalDetokenizer(tokenizer, promptIds);
    this.stop = new StopChecker(params.stop);
    // skipped prefix tokens would have no logits, so such requests compute their whole prompt
    this.seq.wantsPromptLogits = params.promptLogprobs !== null;
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }
}

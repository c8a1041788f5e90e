/**
 * One request's token sequence as the runtime sees it: prompt + generated tokens, how
 * many of them already have KV in the cache, and the cache blocks that hold them.
 */
export type SequenceStatus = "waiting" | "running" | "finished";

export class Sequence {
  /** Prompt followed by generated tokens. */
  readonly tokens: number[];
  /** Tokens whose K/V are in the cache. */
  numComputed = 0;
  /** Cache blocks holding this sequence's K/V, in order. */
  blockTable: number[] = [];
  /** Prefix-cache keys of the leading full blocks registered so far. */
  blockKeys: string[] = [];
  /** Every prompt position's logits are wanted (prompt logprobs), so no prefix can be skipped. */
  wantsPromptLogits = false;
  /** Speculative tokens proposed for the next step, fed after `tokens` and verified by it. */
  draft: number[] = [];
  status: SequenceStatus = "waiting";

  constructor(
    readonly id: number,
    promptIds: readonly number[],
  ) {
    if (promptIds.length === 0) throw new Error("a sequence needs at least one prompt token");
    this.tokens = [...promptIds];
    this.promptLen = promptIds.length;
  }

  readonly promptLen: number;

  get numTokens(): number {
    return this.tokens.length;
  }

  get numOutput(): number {
    return this.tokens.length - this.promptLen;
  }

  get outputIds(): number[] {
    return this.tokens.slice(this.promptLen);
  }

  /** Tokens still to be fed to the model before the next one can be sampled. */
  get numUncomputed(): number {
    return this.tokens.length - this.numComputed;
  }
}

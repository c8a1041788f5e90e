/**
 * One HTTP request's generation: every prompt x n samples, merged into one stream of
 * per-choice events (what each choice gained), with usage and metrics kept as tokens
 * arrive. Both OpenAI endpoints build their chunks from these events.
 */
import type { SamplingParamsInput } from "../../runtime/sampling-params.js";
import type { FinishReason } from "../../runtime/request.js";
import type { ServerMetrics } from "../metrics.js";
import type { ServedRequestOutput, WorkerLLM } from "../worker-llm.js";
import { WorkerError, type PromptTokenLogprob, type TextLogprob } from "../worker-protocol.js";
import { badRequest } from "./errors.js";

export interface ChoiceEvent {
  /** prompt index x n + sample index, as OpenAI numbers choices. */
  choice: number;
  delta: string;
  newTokenIds: number[];
  newLogprobs: TextLogprob[];
  finishReason: FinishReason | null;
  stopReason: string | number | null;
  /** On a choice's first event, when prompt logprobs were requested. */
  promptLogprobs?: PromptTokenLogprob[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface PromptJob {
  promptTokenIds: number[];
  params: SamplingParamsInput;
}

export class GenerationRun {
  readonly usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };

  constructor(
    private readonly llm: WorkerLLM,
    private readonly metrics: ServerMetrics,
    private readonly jobs: PromptJob[],
    private readonly n: number,
    private readonly signal: AbortSignal,
    private readonly priority = 0,
    /** The request field a `constraint` came from, so an engine-side error names it (e.g. "response_format"). */
    private readonly constraintField: string | null = null,
  ) {
    for (const j of jobs) this.usage.prompt_tokens += j.promptTokenIds.length;
    this.usage.total_tokens = this.usage.prompt_tokens;
  }

  /** Batches of events, one batch per engine update of any prompt; ends when every choice finished. */
  async *events(): AsyncGenerator<ChoiceEvent[]> {
    const streams = this.jobs.map((j, p) => this.track(p, this.llm.generateStream({ promptTokenIds: j.promptTokenIds }, j.params, { signal: this.signal, priority: this.priority })));
    try {
      yield* merge(streams);
    } catch (e) {
      throw this.renameConstraintError(e);
    }
  }

  /**
   * The events, after the first batch arrived: a request the engine refuses (a
   * constraint it cannot compile) then fails before a stream sends its 200.
   */
  async opened(): Promise<AsyncGenerator<ChoiceEvent[]>> {
    const it = this.events();
    const first = await it.next();
    return (async function* () {
      if (first.done) return;
      yield first.value;
      yield* it;
    })();
  }

  /** The engine compiles constraints as `constraint`: name the request field instead. */
  private renameConstraintError(e: unknown): unknown {
    if (this.constraintField === null || !(e instanceof WorkerError) || e.code !== "option" || !e.option?.startsWith("constraint")) return e;
    const param = this.constraintField + e.option.slice("constraint".length);
    const message = e.message.startsWith(e.option) ? param + e.message.slice(e.option.length) : `${param}: ${e.message}`;
    return badRequest(message.replace(/\n\s*hint: /, " (hint: ") + (/\n\s*hint: /.test(message) ? ")" : ""), param, "invalid_value");
  }

  /** Turns one prompt's outputs into choice events, recording usage and metrics on the way. */
  private async *track(p: number, stream: AsyncIterable<ServedRequestOutput>): AsyncGenerator<ChoiceEvent[]> {
    const seen: number[] = [];
    const done: boolean[] = [];
    let last = performance.now();
    let gotTokens = false;
    let final: ServedRequestOutput | null = null;
    for await (const out of stream) {
      const events: ChoiceEvent[] = [];
      let added = 0;
      for (const o of out.outputs) {
        const prev = seen[o.index] ?? 0;
        const finished = o.finishReason !== null;
        if (o.tokenIds.length === prev && o.delta === "" && finished === (done[o.index] ?? false)) continue;
        events.push({
          choice: p * this.n + o.index,
          delta: o.delta,
          newTokenIds: o.tokenIds.slice(prev),
          newLogprobs: o.logprobs?.slice(prev) ?? [],
          finishReason: o.finishReason,
          stopReason: o.stopReason,
          ...(seen[o.index] === undefined && out.promptTokenLogprobs ? { promptLogprobs: out.promptTokenLogprobs } : {}),
        });
        added += o.tokenIds.length - prev;
        seen[o.index] = o.tokenIds.length;
        done[o.index] = finished;
      }
      if (added > 0) {
        const now = performance.now();
        if (!gotTokens) this.metrics.promptProcessed(out.promptTokenIds.length);
        this.metrics.tokensGenerated(added, gotTokens ? (now - last) / 1000 : null);
        gotTokens = true;
        last = now;
        this.usage.completion_tokens += added;
        this.usage.total_tokens += added;
      }
      final = out;
      if (events.length > 0) yield events;
    }
    if (final) this.metrics.requestFinished(final.metrics, final.outputs[0]?.finishReason ?? "abort");
  }
}

/** Interleaves async generators, yielding each value as it comes. */
async function* merge<T>(gens: AsyncGenerator<T>[]): AsyncGenerator<T> {
  if (gens.length === 1) return yield* gens[0];
  const next = (i: number) => gens[i].next().then((r) => ({ i, r }));
  const pending = new Map(gens.map((_, i) => [i, next(i)]));
  try {
    while (pending.size > 0) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done) pending.delete(i);
      else {
        pending.set(i, next(i));
        yield r.value;
      }
    }
  } finally {
    // an early exit (error, disconnect) closes the rest, which cancels their requests
    await Promise.allSettled(gens.map((g) => g.return(undefined)));
  }
}

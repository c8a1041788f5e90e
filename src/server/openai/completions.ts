/** POST /v1/completions: text completion, streamed (SSE) or whole. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { SseStream } from "../sse.js";
import type { ServerContext } from "../context.js";
import { badRequest } from "./errors.js";
import { GenerationRun, type ChoiceEvent, type PromptJob } from "./generation.js";
import { completionLogprobs, textLength, type CompletionLogprobs, type LogprobEntry } from "./logprobs.js";
import { checkModel, maxTokensFor, refuseUnsupported, responseFormatConstraint, samplingParams } from "./params.js";
import { parseBody, requestId, unixNow } from "./request-utils.js";
import { CompletionRequest } from "./schemas.js";

/** Prompts as the API accepts them: text, texts, token ids, or lists of token ids. */
async function promptIds(ctx: ServerContext, prompt: CompletionRequest["prompt"]): Promise<{ ids: number[][]; texts: (string | null)[] }> {
  if (typeof prompt === "string") return { ids: [await ctx.llm.encode(prompt)], texts: [prompt] };
  if (typeof prompt[0] === "number") return { ids: [prompt as number[]], texts: [null] };
  if (typeof prompt[0] === "string") {
    const texts = prompt as string[];
    return { ids: await Promise.all(texts.map((t) => ctx.llm.encode(t))), texts };
  }
  const ids = prompt as number[][];
  return { ids, texts: ids.map(() => null) };
}

export async function completions(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const r = parseBody(CompletionRequest, req.body);
  checkModel(r.model, ctx.servedModelName);
  refuseUnsupported(r);
  if (r.suffix) throw badRequest("suffix is not supported (no fill-in-the-middle models yet)", "suffix", "unsupported");
  // max_tokens 0 with echo scores the prompt only (as evaluation harnesses ask): one token is generated and dropped
  const scoreOnly = r.max_tokens === 0;
  if (scoreOnly && !r.echo) throw badRequest("max_tokens: 0 is only meaningful with echo: true (to score the prompt); otherwise ask for at least 1", "max_tokens", "invalid_value");
  const info = ctx.info();
  const n = r.n ?? 1;
  const wantLogprobs = r.logprobs !== undefined && r.logprobs !== null;
  const base = samplingParams(r, info, r.logprobs ?? null);
  if (r.echo && wantLogprobs) base.promptLogprobs = r.logprobs;
  const constraint = responseFormatConstraint(r);
  if (constraint !== null) base.constraint = constraint;
  const { ids, texts } = await promptIds(ctx, r.prompt);
  const vocabBad = ids.flat().find((t) => t >= info.vocabSize);
  if (vocabBad !== undefined) throw badRequest(`prompt: token id ${vocabBad} is outside the vocabulary [0, ${info.vocabSize})`, "prompt", "invalid_value");
  const jobs: PromptJob[] = ids.map((p) => ({ promptTokenIds: p, params: { ...base, maxTokens: maxTokensFor(p.length, scoreOnly ? 1 : r.max_tokens, 16, info, "prompt") } }));
  const echoes = r.echo ? await Promise.all(ids.map((p, i) => texts[i] ?? ctx.llm.decode(p))) : null;

  const ac = ctx.abortOnDisconnect(reply);
  const run = new GenerationRun(ctx.llm, ctx.metrics, jobs, n, ac.signal, r.priority ?? 0, "response_format");
  const id = requestId("cmpl");
  const created = unixNow();
  const model = ctx.servedModelName;
  const withTop = (r.logprobs ?? 0) > 0;
  const usage = () => (scoreOnly ? { ...run.usage, completion_tokens: 0, total_tokens: run.usage.prompt_tokens } : run.usage);

  // Per choice: whether the echo went out yet, and the token text so far (for text_offset).
  const started: boolean[] = [];
  const offsets: number[] = [];
  /** What an event adds to its choice: the echoed prompt first, then the generated text (none when only scoring). */
  const take = (e: ChoiceEvent): { text: string; entries: LogprobEntry[] } => {
    let text = "";
    const entries: LogprobEntry[] = [];
    if (!started[e.choice]) {
      started[e.choice] = true;
      if (echoes) {
        text += echoes[Math.floor(e.choice / n)];
        if (wantLogprobs) entries.push(...(e.promptLogprobs ?? []));
      }
    }
    if (!scoreOnly) {
      text += e.delta;
      entries.push(...e.newLogprobs);
    }
    return { text, entries };
  };
  const logprobsOf = (choice: number, entries: LogprobEntry[]): CompletionLogprobs | null => {
    if (!wantLogprobs) return null;
    const at = offsets[choice] ?? 0;
    offsets[choice] = at + textLength(entries);
    return completionLogprobs(entries, at, withTop);
  };
  const finishOf = (e: ChoiceEvent) => (scoreOnly && e.finishReason !== null ? "length" : e.finishReason);

  if (r.stream) {
    // with a constraint, wait for the engine to accept it, so a bad one is a 400 rather than an error event
    const events0 = constraint !== null ? await run.opened().catch((e: unknown) => (ac.abort(), Promise.reject(e))) : run.events();
    const sse = new SseStream(reply);
    sse.start();
    try {
      for await (const events of events0) {
        for (const e of events) {
          const { text, entries } = take(e);
          if (text === "" && entries.length === 0 && e.finishReason === null) continue;
          sse.send({ id, object: "text_completion", created, model, choices: [{ index: e.choice, text, logprobs: logprobsOf(e.choice, entries), finish_reason: finishOf(e), stop_reason: e.stopReason }] });
        }
      }
      if (r.stream_options?.include_usage) sse.send({ id, object: "text_completion", created, model, choices: [], usage: usage() });
    } catch (e) {
      sse.send(ctx.errorBody(e));
    } finally {
      ac.abort();
    }
    sse.done();
    return;
  }

  const choices = Array.from({ length: jobs.length * n }, (_, c) => ({
    index: c,
    text: "",
    entries: [] as LogprobEntry[],
    finish_reason: null as string | null,
    stop_reason: null as string | number | null,
  }));
  try {
    for await (const events of run.events()) {
      for (const e of events) {
        const ch = choices[e.choice];
        const { text, entries } = take(e);
        ch.text += text;
        for (const x of entries) ch.entries.push(x);
        ch.finish_reason = finishOf(e);
        ch.stop_reason = e.stopReason;
      }
    }
  } finally {
    ac.abort();
  }
  reply.send({
    id,
    object: "text_completion",
    created,
    model,
    choices: choices.map(({ entries, ...ch }) => ({ ...ch, logprobs: logprobsOf(ch.index, entries) })),
    usage: usage(),
  });
}

/** POST /v1/completions: text completion, streamed (SSE) or whole. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { SseStream } from "../sse.js";
import type { ServerContext } from "../context.js";
import { badRequest } from "./errors.js";
import { GenerationRun, type ChoiceEvent, type PromptJob } from "./generation.js";
import type { TextLogprob } from "../worker-protocol.js";
import { completionLogprobs, textLength, type CompletionLogprobs } from "./logprobs.js";
import { checkModel, maxTokensFor, refuseUnsupported, samplingParams } from "./params.js";
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
  if (r.echo && r.logprobs !== undefined && r.logprobs !== null) throw badRequest("echo with logprobs needs prompt logprobs, which are not supported yet", "echo", "unsupported");
  const info = ctx.info();
  const n = r.n ?? 1;
  const base = samplingParams(r, info, r.logprobs ?? null);
  const { ids, texts } = await promptIds(ctx, r.prompt);
  const vocabBad = ids.flat().find((t) => t >= info.vocabSize);
  if (vocabBad !== undefined) throw badRequest(`prompt: token id ${vocabBad} is outside the vocabulary [0, ${info.vocabSize})`, "prompt", "invalid_value");
  const jobs: PromptJob[] = ids.map((p) => ({ promptTokenIds: p, params: { ...base, maxTokens: maxTokensFor(p.length, r.max_tokens, 16, info, "prompt") } }));
  const echoes = r.echo ? await Promise.all(ids.map((p, i) => texts[i] ?? ctx.llm.decode(p))) : null;

  const ac = ctx.abortOnDisconnect(reply);
  const run = new GenerationRun(ctx.llm, ctx.metrics, jobs, n, ac.signal, r.priority ?? 0);
  const id = requestId("cmpl");
  const created = unixNow();
  const model = ctx.servedModelName;
  const wantLogprobs = r.logprobs !== undefined && r.logprobs !== null;
  const withTop = (r.logprobs ?? 0) > 0;
  // text_offset counts the token texts of each choice so far (after any echoed prompt)
  const offsets: number[] = [];
  const logprobsOf = (e: ChoiceEvent): CompletionLogprobs | null => {
    if (!wantLogprobs) return null;
    const at = offsets[e.choice] ?? (echoes ? echoes[Math.floor(e.choice / n)].length : 0);
    offsets[e.choice] = at + textLength(e.newLogprobs);
    return completionLogprobs(e.newLogprobs, at, withTop);
  };

  if (r.stream) {
    const sse = new SseStream(reply);
    sse.start();
    try {
      if (echoes) {
        for (let c = 0; c < jobs.length * n; c++) sse.send({ id, object: "text_completion", created, model, choices: [{ index: c, text: echoes[Math.floor(c / n)], logprobs: null, finish_reason: null }] });
      }
      for await (const events of run.events()) {
        for (const e of events) {
          sse.send({ id, object: "text_completion", created, model, choices: [{ index: e.choice, text: e.delta, logprobs: logprobsOf(e), finish_reason: e.finishReason, stop_reason: e.stopReason }] });
        }
      }
      if (r.stream_options?.include_usage) sse.send({ id, object: "text_completion", created, model, choices: [], usage: run.usage });
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
    text: echoes ? echoes[Math.floor(c / n)] : "",
    logprobs: [] as TextLogprob[],
    finish_reason: null as string | null,
    stop_reason: null as string | number | null,
  }));
  try {
    for await (const events of run.events()) {
      for (const e of events) {
        const ch = choices[e.choice];
        ch.text += e.delta;
        for (const lp of e.newLogprobs) ch.logprobs.push(lp);
        ch.finish_reason = e.finishReason;
        ch.stop_reason = e.stopReason;
      }
    }
  } finally {
    ac.abort();
  }
  const start = (c: number) => (echoes ? echoes[Math.floor(c / n)].length : 0);
  reply.send({
    id,
    object: "text_completion",
    created,
    model,
    choices: choices.map((ch) => ({ ...ch, logprobs: wantLogprobs ? completionLogprobs(ch.logprobs, start(ch.index), withTop) : null })),
    usage: run.usage,
  });
}

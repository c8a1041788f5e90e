/** POST /v1/chat/completions: the model's chat template applied, then streamed (SSE) or whole. */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../context.js";
import { SseStream } from "../sse.js";
import type { TextLogprob } from "../worker-protocol.js";
import { badRequest } from "./errors.js";
import { GenerationRun } from "./generation.js";
import { chatLogprobs } from "./logprobs.js";
import { messagesForTemplate } from "../../tools/index.js";
import { ChoiceToolStream, planTools, toolFinishReason, wholeToolOutput } from "./chat-tools.js";
import { checkModel, maxTokensFor, refuseUnsupported, responseFormatConstraint, samplingParams } from "./params.js";
import { parseBody, requestId, unixNow } from "./request-utils.js";
import { ChatRequest, TextPart, type ChatMessageIn } from "./schemas.js";

/** Text-only content: a list of text parts is joined with newlines (as vLLM does); other parts are refused. */
export function flattenMessages(messages: ChatMessageIn[]): Record<string, unknown>[] {
  return messages.map((m, i) => {
    if (!Array.isArray(m.content)) return { ...m, content: m.content ?? "" };
    const texts = m.content.map((part, j) => {
      const t = TextPart.safeParse(part);
      if (!t.success) {
        const type = typeof part.type === "string" ? part.type : "?";
        throw badRequest(`messages[${i}].content[${j}]: content parts of type "${type}" are not supported; this server takes text parts only`, `messages[${i}].content[${j}]`, "unsupported");
      }
      return t.data.text;
    });
    return { ...m, content: texts.join("\n") };
  });
}

/** Renders the conversation through the model's chat template (400 if it has none). */
export async function renderChat(ctx: ServerContext, messages: ChatMessageIn[], addGenerationPrompt: boolean, extra?: Record<string, unknown> | null, tools?: unknown[] | null) {
  if (!ctx.info().hasChatTemplate) {
    throw badRequest("this model has no chat template, so /v1/chat/completions cannot format a conversation for it; use /v1/completions with a plain prompt, or load a tokenizer that has one (--tokenizer)", "messages", "no_chat_template");
  }
  // assistant tool_calls carry their arguments as objects, the way templates print them
  return ctx.llm.renderChat(messagesForTemplate(flattenMessages(messages)), { addGenerationPrompt, extra: extra ?? undefined, tools: tools ?? undefined });
}

export async function chatCompletions(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const r = parseBody(ChatRequest, req.body);
  checkModel(r.model, ctx.servedModelName);
  refuseUnsupported(r);
  if (r.max_tokens === 0) throw badRequest("max_tokens: expected at least 1", "max_tokens", "invalid_value");
  if (r.top_logprobs !== undefined && r.top_logprobs !== null && !r.logprobs) throw badRequest("top_logprobs needs logprobs: true", "top_logprobs", "invalid_value");
  const info = ctx.info();
  const lp = r.logprobs ? (r.top_logprobs ?? 0) : null;
  const base = samplingParams(r, info, lp);
  const plan = planTools(r, info.toolCallFormat);
  const formatConstraint = responseFormatConstraint(r);
  const constraint = plan.constraint ?? formatConstraint;
  const constraintField = plan.constraint !== null ? "tool_choice" : "response_format";
  if (constraint !== null) base.constraint = constraint;
  const rendered = await renderChat(ctx, r.messages, r.add_generation_prompt ?? true, r.chat_template_kwargs, plan.tools);
  const maxTokens = maxTokensFor(rendered.promptTokenIds.length, r.max_completion_tokens ?? r.max_tokens, null, info, "messages");
  const n = r.n ?? 1;

  const ac = ctx.abortOnDisconnect(reply);
  const run = new GenerationRun(ctx.llm, ctx.metrics, [{ promptTokenIds: rendered.promptTokenIds, params: { ...base, maxTokens } }], n, ac.signal, r.priority ?? 0, constraintField);
  const id = requestId("chatcmpl");
  const created = unixNow();
  const model = ctx.servedModelName;
  const chunk = (choices: unknown[], extra: object = {}) => ({ id, object: "chat.completion.chunk", created, model, choices, ...extra });

  if (r.stream) {
    // with a constraint, wait for the engine to accept it, so a bad one is a 400 rather than an error event
    const events0 = constraint !== null ? await run.opened().catch((e: unknown) => (ac.abort(), Promise.reject(e))) : run.events();
    const sse = new SseStream(reply);
    sse.start();
    const split = Array.from({ length: n }, () => new ChoiceToolStream(plan));
    try {
      // OpenAI opens every choice with the assistant role and empty content
      for (let c = 0; c < n; c++) sse.send(chunk([{ index: c, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]));
      for await (const events of events0) {
        for (const e of events) {
          const s = split[e.choice];
          const d = s.push(e.delta);
          if (e.finishReason !== null) {
            const rest = s.finish();
            d.content += rest.content;
            d.toolCalls.push(...rest.toolCalls);
          }
          const delta: Record<string, unknown> = {};
          if (d.content !== "" || (d.toolCalls.length === 0 && e.finishReason === null)) delta.content = d.content;
          if (d.toolCalls.length > 0) delta.tool_calls = d.toolCalls;
          const finish = toolFinishReason(e.finishReason, s.called);
          sse.send(chunk([{ index: e.choice, delta, logprobs: lp === null ? null : chatLogprobs(e.newLogprobs), finish_reason: finish, stop_reason: e.stopReason }]));
        }
      }
      if (r.stream_options?.include_usage) sse.send(chunk([], { usage: run.usage }));
    } catch (e) {
      sse.send(ctx.errorBody(e));
    } finally {
      ac.abort();
    }
    sse.done();
    return;
  }

  const choices = Array.from({ length: n }, (_, c) => ({ index: c, text: "", logprobs: [] as TextLogprob[], finish_reason: null as string | null, stop_reason: null as string | number | null }));
  try {
    for await (const events of run.events()) {
      for (const e of events) {
        const ch = choices[e.choice];
        ch.text += e.delta;
        for (const x of e.newLogprobs) ch.logprobs.push(x);
        ch.finish_reason = e.finishReason;
        ch.stop_reason = e.stopReason;
      }
    }
  } finally {
    ac.abort();
  }
  reply.send({
    id,
    object: "chat.completion",
    created,
    model,
    choices: choices.map((ch) => {
      const { content, toolCalls } = wholeToolOutput(plan, ch.text);
      return {
        index: ch.index,
        message: { role: "assistant", content, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) },
        logprobs: lp === null ? null : chatLogprobs(ch.logprobs),
        finish_reason: toolFinishReason(ch.finish_reason, toolCalls.length > 0),
        stop_reason: ch.stop_reason,
      };
    }),
    usage: run.usage,
  });
}

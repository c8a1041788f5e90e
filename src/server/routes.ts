/** The routes besides the two generation endpoints: models, health, tokenizer, metrics, the chat page. */
import type { FastifyInstance } from "fastify";
import type { ServerContext } from "./context.js";
import { chatCompletions, renderChat } from "./openai/chat.js";
import { completions } from "./openai/completions.js";
import { badRequest } from "./openai/errors.js";
import { checkModel } from "./openai/params.js";
import { parseBody, unixNow } from "./openai/request-utils.js";
import { DetokenizeRequest, TokenizeRequest } from "./openai/schemas.js";
import { chatPageHtml } from "./web-page.js";

const started = unixNow();

export function registerRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/completions", (req, reply) => completions(ctx, req, reply));
  app.post("/v1/chat/completions", (req, reply) => chatCompletions(ctx, req, reply));

  app.get("/v1/models", async () => {
    const info = ctx.llm.info;
    return {
      object: "list",
      data: [
        {
          id: ctx.servedModelName,
          object: "model",
          created: started,
          owned_by: "llmrt",
          root: info?.model ?? null,
          parent: null,
          max_model_len: info?.maxSeqLen ?? null,
          random_weights: info?.randomWeights ?? null,
          ready: info !== null,
        },
      ],
    };
  });

  app.get("/health", async (_req, reply) => {
    if (ctx.draining) return reply.code(503).send({ status: "shutting_down" });
    const failed = ctx.llm.failure ?? ctx.llm.engineFailure;
    if (failed) return reply.code(503).send({ status: "failed", error: failed.message });
    if (ctx.llm.info === null) return reply.code(503).send({ status: "loading" });
    return { status: "ok" };
  });

  app.post("/tokenize", async (req) => {
    const r = parseBody(TokenizeRequest, req.body);
    checkModel(r.model, ctx.servedModelName);
    const info = ctx.info();
    if ((r.prompt === undefined) === (r.messages === undefined)) throw badRequest("pass exactly one of `prompt` or `messages`", "prompt", "invalid_value");
    const tokens = r.messages
      ? (await renderChat(ctx, r.messages, r.add_generation_prompt ?? true, r.chat_template_kwargs)).promptTokenIds
      : await ctx.llm.encode(r.prompt!, r.add_special_tokens ?? true);
    return { count: tokens.length, max_model_len: info.maxSeqLen, tokens };
  });

  app.post("/detokenize", async (req) => {
    const r = parseBody(DetokenizeRequest, req.body);
    checkModel(r.model, ctx.servedModelName);
    ctx.info();
    return { prompt: await ctx.llm.decode(r.tokens) };
  });

  app.get("/metrics", async (_req, reply) => {
    if (ctx.llm.info !== null) {
      try {
        ctx.metrics.setEngineStats(await ctx.llm.stats());
      } catch {
        // the engine thread is gone: serve the last numbers rather than fail the scrape
      }
    }
    reply.header("content-type", ctx.metrics.contentType);
    return ctx.metrics.text();
  });

  app.get("/", async (_req, reply) => reply.header("content-type", "text/html; charset=utf-8").header("cache-control", "no-cache").send(chatPageHtml()));

  // A favicon request must not spam 404s in the browser console.
  app.get("/favicon.ico", async (_req, reply) => reply.code(204).send());

  app.get("/version", async () => ({ version: "0.1.0" }));
}

/**
 * The HTTP server: fastify with OpenAI-shaped errors everywhere, optional API key and
 * CORS, and the routes. Generation happens on the engine thread (WorkerLLM), so this
 * event loop only parses, validates and streams.
 */
import { timingSafeEqual } from "node:crypto";
import cors from "@fastify/cors";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { ServerContext } from "./context.js";
import { ServerMetrics } from "./metrics.js";
import { ApiError, fromRuntime } from "./openai/errors.js";
import { registerRoutes } from "./routes.js";
import type { WorkerLLM } from "./worker-llm.js";

export interface AppOptions {
  /** The model name clients send and /v1/models lists. */
  servedModelName: string;
  /** Require `Authorization: Bearer KEY` on the API routes. */
  apiKey?: string;
  /** Allowed CORS origin(s), comma-separated, or "*". Off by default. */
  cors?: string;
  /** Largest request body in bytes (default 8 MiB); larger gets a 413. */
  bodyLimit?: number;
}

const DEFAULT_BODY_LIMIT = 8 << 20;

/** Routes that need the API key (vLLM protects the same ones; /health, /metrics and the page stay open). */
const PROTECTED = /^\/(v1\/|tokenize|detokenize)/;

export async function buildApp(llm: WorkerLLM, opts: AppOptions): Promise<{ app: FastifyInstance; ctx: ServerContext }> {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = Fastify({ bodyLimit, logger: false });
  const ctx = new ServerContext(llm, new ServerMetrics(opts.servedModelName), opts.servedModelName);

  if (opts.cors) {
    const origins = opts.cors.split(",").map((s) => s.trim());
    await app.register(cors, { origin: origins.includes("*") ? true : origins });
  }

  // Clients (curl -d) often send JSON without a JSON content type: parse it anyway.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, body === "" ? undefined : JSON.parse(body as string));
    } catch (e) {
      done(new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, null, "invalid_json"), undefined);
    }
  });

  if (opts.apiKey) {
    const want = Buffer.from(`Bearer ${opts.apiKey}`);
    app.addHook("onRequest", async (req) => {
      if (!PROTECTED.test(req.url)) return;
      const got = Buffer.from(req.headers.authorization ?? "");
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        throw new ApiError(401, req.headers.authorization ? "Incorrect API key provided." : "Missing API key: send `Authorization: Bearer <key>`.", null, "invalid_api_key");
      }
    });
  }

  app.addHook("onRequest", async (req) => {
    if (ctx.draining && req.method === "POST") throw new ApiError(503, "the server is shutting down", null, "shutting_down");
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const api = toApiError(err, bodyLimit);
    if (api.status >= 500 && api.code === "internal_error") console.error("llmrt serve:", err);
    return reply.code(api.status).send(api.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const api = new ApiError(404, `no route ${req.method} ${req.url.split("?")[0]}`, null, "not_found");
    return reply.code(404).send(api.body());
  });

  registerRoutes(app, ctx);
  return { app, ctx };
}

/** fastify's own errors (body parsing, limits) and everything else, as OpenAI errors. */
function toApiError(err: FastifyError, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError(413, `the request body is larger than the limit of ${bodyLimit} bytes`, null, "body_too_large");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError(400, `the request body is not valid JSON: ${err.message}`, null, "invalid_json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError(400, "the request body is empty; send a JSON object", null, "invalid_json");
  }
  if (err instanceof SyntaxError) return new ApiError(400, `the request body is not valid JSON: ${err.message}`, null, "invalid_json");
  if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) return new ApiError(err.statusCode, err.message, null, err.code ?? null);
  return fromRuntime(err);
}

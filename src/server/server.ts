/**
 * Starts a server: the engine thread begins loading while HTTP already listens (so
 * /health can say 503 "loading"), and a graceful close lets in-flight requests finish
 * within a grace period before aborting them.
 */
import type { FastifyInstance } from "fastify";
import { parseSpeculative } from "../runtime/speculative/config.js";
import { resolveToolCallFormat } from "../tools/index.js";
import { buildApp, type AppOptions } from "./app.js";
import type { ServerContext } from "./context.js";
import { WorkerLLM, type WorkerLLMOptions } from "./worker-llm.js";
import type { ModelInfo } from "./worker-protocol.js";

export interface ServeOptions extends Omit<AppOptions, "servedModelName">, WorkerLLMOptions {
  model: string;
  /** Defaults to the --model value. */
  servedModelName?: string;
  host?: string;
  /** 0 picks a free port. Default 8000. */
  port?: number;
  /** Tool-call format, when the chat template does not show one: hermes, llama3_json or mistral. */
  toolCallParser?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  llm: WorkerLLM;
  ctx: ServerContext;
  /** http://host:port */
  url: string;
  /** Resolves when the model is loaded. */
  ready: Promise<ModelInfo>;
  /** Stops accepting, waits up to graceMs for in-flight requests, aborts the rest, stops the engine thread. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const { model, servedModelName, host = "127.0.0.1", port = 8000, apiKey, cors, bodyLimit, toolCallParser, ...llmOpts } = opts;
  // bad names fail here, before the engine thread starts loading
  if (toolCallParser !== undefined) resolveToolCallFormat(null, toolCallParser);
  if (typeof llmOpts.speculative === "string") parseSpeculative(llmOpts.speculative);
  const llm = WorkerLLM.start(model, llmOpts, toolCallParser);
  const { app, ctx } = await buildApp(llm, { servedModelName: servedModelName ?? model, apiKey, cors, bodyLimit });
  try {
    await app.listen({ host, port });
  } catch (e) {
    await llm.close();
    throw e;
  }
  const addr = app.server.address();
  const boundPort = typeof addr === "object" && addr !== null ? addr.port : port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${boundPort}`;

  let closing: Promise<void> | null = null;
  const close = (graceMs = 30_000) =>
    (closing ??= (async () => {
      ctx.draining = true;
      const closed = app.close();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)));
      const timedOut = await Promise.race([closed.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) {
        await llm.close(); // ends every stream (finish_reason "abort"), so connections can close
        app.server.closeAllConnections();
        await closed;
      } else {
        await llm.close();
      }
    })());

  return { app, llm, ctx, url, ready: llm.ready, close };
}

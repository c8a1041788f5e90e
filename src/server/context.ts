/** What every route needs: the model thread, metrics, names, and the request plumbing they share. */
import type { FastifyReply } from "fastify";
import type { ServerMetrics } from "./metrics.js";
import { ApiError, fromRuntime, type OpenAIErrorBody } from "./openai/errors.js";
import type { WorkerLLM } from "./worker-llm.js";
import type { ModelInfo } from "./worker-protocol.js";

export class ServerContext {
  /** Set while shutting down: new work is refused with a 503. */
  draining = false;

  constructor(
    readonly llm: WorkerLLM,
    readonly metrics: ServerMetrics,
    readonly servedModelName: string,
  ) {}

  /** The loaded model's facts; a 503 while it is still loading. */
  info(): ModelInfo {
    const failure = this.llm.failure ?? this.llm.engineFailure;
    if (failure && !this.draining) throw new ApiError(503, `the model is unavailable: ${failure.message}`, null, "model_unavailable");
    if (this.llm.info === null) throw new ApiError(503, "the model is still loading; retry shortly (GET /health says 200 when ready)", null, "model_loading");
    return this.llm.info;
  }

  /** An AbortController that fires if the client disconnects before the reply is complete. */
  abortOnDisconnect(reply: FastifyReply): AbortController {
    const ac = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) ac.abort();
    };
    reply.raw.once("close", onClose);
    ac.signal.addEventListener("abort", () => reply.raw.off("close", onClose), { once: true });
    // the client may have left while the prompt was being tokenized
    if (reply.raw.destroyed || reply.request.raw.socket?.destroyed) ac.abort();
    return ac;
  }

  /** OpenAI's error body for anything thrown (used inside streams, where the status is already sent). */
  errorBody(e: unknown): OpenAIErrorBody {
    return fromRuntime(e).body();
  }
}

/**
 * Errors in OpenAI's shape: {error: {message, type, param, code}}. Every failure a
 * route can meet is turned into one of these, with the HTTP status to send.
 */
import type { z } from "zod";
import { LlmrtError } from "../../errors.js";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status >= 500 ? "server_error" : status === 401 ? "authentication_error" : "invalid_request_error",
  ) {
    super(message);
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) => new ApiError(400, message, param, code);

/** "messages[0].content" from zod's path. */
export function pathName(path: ReadonlyArray<PropertyKey>): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? String(p) : `.${String(p)}`;
  return s;
}

export function fromZod(err: z.ZodError): ApiError {
  const issue = err.issues[0];
  const param = pathName(issue.path);
  return badRequest(param ? `${param}: ${issue.message}` : issue.message, param || null, "invalid_value");
}

/** snake_case of an LLM API option name ("topP" -> "top_p", "logitBias[5]" -> "logit_bias[5]"). */
function snakeParam(option: string): string {
  return option.replace(/^[A-Za-z]+/, (w) => w.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()));
}

/** Maps an error from the runtime (a typed LlmrtError or anything else) to an ApiError. */
export function fromRuntime(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof LlmrtError) {
    const message = e.message.replace(/\n\s*hint: /, " (hint: ") + (e.message.includes("\n  hint: ") ? ")" : "");
    const option = (e as { option?: unknown }).option;
    switch (e.code) {
      case "option": {
        if (typeof option !== "string") return badRequest(message, null, "invalid_value");
        const param = snakeParam(option);
        return badRequest(message.startsWith(option) ? param + message.slice(option.length) : message, param, "invalid_value");
      }
      case "chat_template":
        return badRequest(message, "messages", "chat_template");
      case "tokenizer":
        return badRequest(message, null, "tokenizer");
      case "closed":
      case "worker":
        return new ApiError(503, message, null, "unavailable");
    }
  }
  return new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, null, "internal_error");
}

/**
 * OpenAI request fields -> the LLM API's SamplingParams, plus the checks that need
 * the model: served name, vocabulary, context length. Fields we cannot honour yet
 * are refused with a 400 that says so, never silently ignored.
 */
import { normalizeSamplingParams, type SamplingParamsInput } from "../../runtime/sampling-params.js";
import { normalizeConstraint, responseFormatToConstraint, type ConstraintSpec } from "../../structured/index.js";
import type { ModelInfo } from "../worker-protocol.js";
import { ApiError, badRequest, fromRuntime } from "./errors.js";
import type { ChatRequest, CompletionRequest } from "./schemas.js";

type Common = CompletionRequest | ChatRequest;

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

/** 404 unless `model` is absent or names the served model. */
export function checkModel(model: string | null | undefined, servedName: string): void {
  if (model === undefined || model === null || model === servedName) return;
  throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${servedName}\`.`, "model", "model_not_found");
}

export function refuseUnsupported(r: Common): void {
  if (r.min_tokens) throw badRequest("min_tokens is not supported yet; leave it out or pass 0", "min_tokens", "unsupported");
  if (r.best_of !== undefined && r.best_of !== null && r.best_of !== (r.n ?? 1)) {
    throw badRequest(`best_of (${r.best_of}) must equal n (${r.n ?? 1}): best-of ranking is not supported`, "best_of", "unsupported");
  }
}

/**
 * `response_format` as a structured-output constraint (null for text or none),
 * checked here so a bad schema is a 400 naming the field before anything is queued.
 */
export function responseFormatConstraint(r: Common): ConstraintSpec | null {
  try {
    const spec = responseFormatToConstraint(r.response_format);
    if (spec !== null) normalizeConstraint(spec, spec.type === "json_schema" ? "response_format.json_schema" : "response_format");
    return spec;
  } catch (e) {
    throw fromRuntime(e);
  }
}

/** The sampling fields both endpoints share; `logprobs` is set by the caller. */
export function samplingParams(r: Common, info: ModelInfo, logprobs: number | null): SamplingParamsInput {
  const bias: Record<number, number> = {};
  for (const [k, v] of Object.entries(r.logit_bias ?? {})) {
    if (Number(k) >= info.vocabSize) throw badRequest(`logit_bias: token id ${k} is outside the vocabulary [0, ${info.vocabSize})`, "logit_bias", "invalid_value");
    bias[Number(k)] = v;
  }
  const p: SamplingParamsInput = {
    temperature: opt(r.temperature),
    topP: opt(r.top_p),
    topK: opt(r.top_k),
    minP: opt(r.min_p),
    repetitionPenalty: opt(r.repetition_penalty),
    presencePenalty: opt(r.presence_penalty),
    frequencyPenalty: opt(r.frequency_penalty),
    seed: opt(r.seed),
    stop: opt(r.stop),
    stopTokenIds: opt(r.stop_token_ids),
    ignoreEos: opt(r.ignore_eos),
    logitBias: bias,
    n: opt(r.n),
    logprobs,
  };
  try {
    normalizeSamplingParams(p); // every field checked here, on the HTTP thread, with OpenAI's names
  } catch (e) {
    throw fromRuntime(e);
  }
  return p;
}

/**
 * The completion budget: `requested` if the prompt leaves room for it, else a 400
 * stating both numbers. Without a request, `fallback` (or all the room left).
 */
export function maxTokensFor(promptLen: number, requested: number | null | undefined, fallback: number | null, info: ModelInfo, param: string): number {
  const room = info.maxSeqLen - promptLen;
  if (room < 1) {
    throw badRequest(
      `This model's maximum context length is ${info.maxSeqLen} tokens, but the prompt has ${promptLen} tokens, leaving no room for a completion. Please shorten the prompt.`,
      param,
      "context_length_exceeded",
    );
  }
  if (requested === undefined || requested === null) return Math.min(fallback ?? room, room);
  if (promptLen + requested > info.maxSeqLen) {
    throw badRequest(
      `This model's maximum context length is ${info.maxSeqLen} tokens. However, you requested ${promptLen + requested} tokens (${promptLen} in the prompt, ${requested} for the completion). Please reduce the length of the prompt or the completion.`,
      param,
      "context_length_exceeded",
    );
  }
  return requested;
}

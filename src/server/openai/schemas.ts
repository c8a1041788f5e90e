/**
 * Request bodies of the OpenAI-compatible endpoints (and vLLM's tokenizer ones) as zod
 * schemas. Unknown fields are ignored, as OpenAI and vLLM do; fields whose meaning we
 * cannot honour yet are refused in params.ts rather than silently dropped.
 */
import { z } from "zod";

const int = () => z.number().int();
const tokenIds = z.array(int().min(0)).min(1);

/** Sampling fields common to both endpoints, with vLLM's extensions. */
const sampling = {
  model: z.string().nullish(),
  max_tokens: int().min(0).nullish(), // 0 only with echo (prompt scoring); checked per endpoint
  temperature: z.number().min(0).max(100).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: int().min(1).max(128).nullish(),
  stop: z.union([z.string(), z.array(z.string().min(1)).max(64)], { error: "expected a string or an array of non-empty strings" }).nullish(),
  seed: int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string().regex(/^(0|[1-9]\d{0,9})$/, "keys must be token ids"), z.number().min(-100).max(100)).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().nullish(),
  response_format: z.unknown().optional(),
  best_of: int().min(1).nullish(),
  // vLLM extensions
  top_k: int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(100).nullish(),
  stop_token_ids: z.array(int().min(0)).nullish(),
  ignore_eos: z.boolean().nullish(),
  min_tokens: int().min(0).nullish(),
  priority: int().nullish(),
};

export const CompletionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)], {
    error: "expected a string, an array of strings, an array of token ids, or an array of arrays of token ids",
  }),
  logprobs: int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const contentPart = z.looseObject({ type: z.string() });

const message = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(contentPart), z.null()], { error: "expected a string, null, or an array of content parts" }).optional(),
  name: z.string().optional(),
});

export const ChatRequest = z.object({
  ...sampling,
  messages: z.array(message).min(1),
  max_completion_tokens: int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int().min(0).max(20).nullish(),
  tools: z.array(z.unknown()).nullish(),
  tool_choice: z.unknown().optional(),
  parallel_tool_calls: z.boolean().nullish(),
  // vLLM extensions
  add_generation_prompt: z.boolean().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;
export type ChatMessageIn = z.infer<typeof message>;

/** Checks a content part after the union let any `type` through, for a message that names the part. */
export const TextPart = textPart;

/** vLLM's /tokenize: either `prompt` or `messages` (checked in the route). */
export const TokenizeRequest = z.object({
  model: z.string().nullish(),
  prompt: z.string().optional(),
  add_special_tokens: z.boolean().nullish(),
  messages: z.array(message).min(1).optional(),
  add_generation_prompt: z.boolean().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});
export type TokenizeRequest = z.infer<typeof TokenizeRequest>;

export const DetokenizeRequest = z.object({
  model: z.string().nullish(),
  tokens: z.array(int().min(0)),
});

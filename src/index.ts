/** llmrt's public API. */
export { LLM, type LLMOptions, type Prompt, type GenerateOptions } from "./api/llm.js";
export type { RequestOutput, CompletionOutput, RequestMetrics } from "./api/outputs.js";
export { DEFAULT_MODEL } from "./api/load-model.js";
export { normalizeSamplingParams, DEFAULT_SAMPLING_PARAMS, type SamplingParams, type SamplingParamsInput } from "./runtime/sampling-params.js";
export type { FinishReason, TokenLogprob } from "./runtime/request.js";
export type { ModelConfig } from "./checkpoint/config.js";
export { openCheckpoint } from "./checkpoint/open.js";
export { loadTokenizer } from "./tokenizer/load.js";
export type { Tokenizer } from "./tokenizer/types.js";
export * from "./errors.js";
export type { BeamSearchOptions } from "./api/llm.js";
export { parseSpeculative, type SpeculativeConfig } from "./runtime/speculative/config.js";
export { compileConstraint, type ConstraintSpec } from "./structured/index.js";
export { parseToolCalls, ToolCallStreamParser, resolveToolCallFormat, type ToolCall, type ToolCallFormat, type ToolDefinition } from "./tools/index.js";
export { applyChatTemplate } from "./tokenizer/chat-template.js";

/** Tool calls in the OpenAI chat-completions shape, and the formats models write them in. */

/**
 * How a model writes tool calls:
 * - "hermes": `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes 2 Pro, Qwen 2/2.5/3, many fine-tunes)
 * - "llama3_json": `{"name": ..., "parameters": {...}}` as the whole message, optionally after `<|python_tag|>`, several joined by `;`
 * - "mistral": `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]` (the marker may be missing when the detokenizer drops control tokens)
 */
export type ToolCallFormat = "hermes" | "llama3_json" | "mistral";

export const TOOL_CALL_FORMATS: readonly ToolCallFormat[] = ["hermes", "llama3_json", "mistral"];

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** One streamed piece of a tool call (OpenAI `choices[].delta.tool_calls[]`). The first for an index carries id, type and name. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function: { name?: string; arguments?: string };
}

export interface ToolCallParse {
  /** Text that is not part of any tool call (whitespace around calls dropped). */
  content: string;
  toolCalls: ToolCall[];
}

export interface ToolStreamDelta {
  /** New plain text. */
  content: string;
  /** New tool-call pieces, at most one per call index. */
  toolCalls: ToolCallDelta[];
}

/** An OpenAI tool definition. */
export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

/** OpenAI tool_choice. */
export type ToolChoice = "none" | "auto" | "required" | { type: "function"; function: { name: string } };

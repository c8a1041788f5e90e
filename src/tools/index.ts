/** Tool calls: formats, parsing (whole and streamed), tool_choice constraints. */
export type { ToolCall, ToolCallDelta, ToolCallFormat, ToolCallParse, ToolChoice, ToolDefinition, ToolStreamDelta } from "./types.js";
export { TOOL_CALL_FORMATS } from "./types.js";
export { detectToolCallFormat, resolveToolCallFormat } from "./detect.js";
export { ToolCallStreamParser, newToolCallId, randomCallId, type ToolStreamOptions } from "./stream-parser.js";
export { parseToolCalls, mergeToolDeltas } from "./parse.js";
export { checkTools, checkToolChoice, messagesForTemplate, toolChoiceConstraint, constrainedToolCalls } from "./tool-choice.js";

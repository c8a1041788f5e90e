/**
 * `tools` and `tool_choice` for /v1/chat/completions: what the template gets, the
 * constraint that forces a call ("required" or a named function, so even a
 * random-weight model writes a valid one), and turning each choice's output into
 * content plus `tool_calls`, whole or as stream deltas.
 */
import type { ConstraintSpec } from "../../structured/index.js";
import {
  checkToolChoice,
  checkTools,
  constrainedToolCalls,
  parseToolCalls,
  randomCallId,
  ToolCallStreamParser,
  toolChoiceConstraint,
  type ToolCall,
  type ToolCallDelta,
  type ToolCallFormat,
  type ToolChoice,
  type ToolDefinition,
} from "../../tools/index.js";
import { badRequest, fromRuntime } from "./errors.js";
import type { ChatRequest } from "./schemas.js";

export interface ToolPlan {
  /** Passed to the chat template; null when there are none or tool_choice is "none". */
  tools: ToolDefinition[] | null;
  choice: ToolChoice;
  /** How the model writes calls, for parsing under "auto". */
  format: ToolCallFormat | null;
  /** Forces a call ("required", named function); null otherwise. */
  constraint: ConstraintSpec | null;
}

/** Checks `tools` / `tool_choice` against the model's tool-call format (null: none known). */
export function planTools(r: ChatRequest, format: ToolCallFormat | null): ToolPlan {
  let tools: ToolDefinition[];
  let choice: ToolChoice;
  try {
    tools = r.tools && r.tools.length > 0 ? checkTools(r.tools) : [];
    choice = checkToolChoice(r.tool_choice, tools);
  } catch (e) {
    throw fromRuntime(e);
  }
  if (tools.length === 0 || choice === "none") return { tools: null, choice: "none", format, constraint: null };
  if (choice === "auto" && format === null) {
    throw badRequest(
      'this model\'s chat template shows no tool-call format, so calls in its output cannot be recognised; start the server with --tool-call-parser hermes|llama3_json|mistral, or use tool_choice "required" or a named function',
      "tools",
      "unsupported",
    );
  }
  let constraint = toolChoiceConstraint(tools, choice);
  // "required" allows a list of calls; parallel_tool_calls: false asks for exactly one
  if (choice === "required" && r.parallel_tool_calls === false && constraint?.type === "json_schema" && typeof constraint.schema === "object") {
    constraint = { type: "json_schema", schema: { ...constraint.schema, maxItems: 1 } };
  }
  if (constraint !== null && r.response_format !== undefined && r.response_format !== null && (r.response_format as { type?: unknown }).type !== "text") {
    throw badRequest(`response_format cannot be combined with tool_choice ${JSON.stringify(choice)}: the call's arguments are already constrained to the tool's schema`, "response_format", "invalid_value");
  }
  return { tools, choice, format, constraint };
}

export interface ChoiceDelta {
  content: string;
  toolCalls: ToolCallDelta[];
}

/** One choice's output, split into content and tool calls as it streams. */
export class ChoiceToolStream {
  private readonly parser: ToolCallStreamParser | null;
  private buffered = "";
  private announced = false;
  /** Whether any tool call was sent (finish_reason "tool_calls"). */
  called = false;

  constructor(private readonly plan: ToolPlan) {
    this.parser = plan.choice === "auto" && plan.format !== null ? new ToolCallStreamParser(plan.format) : null;
  }

  push(text: string): ChoiceDelta {
    const { choice } = this.plan;
    if (this.parser) return this.note(this.parser.push(text));
    if (choice === "none") return { content: text, toolCalls: [] };
    if (choice === "required") {
      this.buffered += text; // an array of calls: sent whole once it is complete
      return { content: "", toolCalls: [] };
    }
    if (choice === "auto") return { content: text, toolCalls: [] }; // no format: planTools refuses this
    // a named function: the output is its arguments, streamed as they come
    if (text === "") return { content: "", toolCalls: [] };
    if (this.announced) return { content: "", toolCalls: [{ index: 0, function: { arguments: text } }] };
    this.announced = this.called = true;
    return { content: "", toolCalls: [{ index: 0, id: randomCallId(), type: "function", function: { name: choice.function.name, arguments: text } }] };
  }

  finish(): ChoiceDelta {
    if (this.parser) return this.note(this.parser.finish());
    if (this.plan.choice !== "required") return { content: "", toolCalls: [] };
    const calls = constrainedToolCalls(this.buffered, this.plan.choice);
    if (calls === null) return { content: this.buffered, toolCalls: [] }; // cut short: what there is, as text
    this.called = calls.length > 0;
    return { content: "", toolCalls: calls.map((c, index) => ({ index, ...c })) };
  }

  private note(d: ChoiceDelta): ChoiceDelta {
    if (d.toolCalls.length > 0) this.called = true;
    return d;
  }
}

/** A whole choice's output as an assistant message's content and tool calls. */
export function wholeToolOutput(plan: ToolPlan, text: string): { content: string | null; toolCalls: ToolCall[] } {
  if (plan.choice === "none") return { content: text, toolCalls: [] };
  if (plan.choice === "auto") {
    const p = parseToolCalls(text, plan.format!);
    return { content: p.toolCalls.length > 0 && p.content === "" ? null : p.content, toolCalls: p.toolCalls };
  }
  const calls = constrainedToolCalls(text, plan.choice);
  return calls === null ? { content: text, toolCalls: [] } : { content: null, toolCalls: calls };
}

/** OpenAI reports "tool_calls" when the model stopped after calling tools; a cut stays "length". */
export function toolFinishReason(reason: string | null, called: boolean): string | null {
  return called && reason === "stop" ? "tool_calls" : reason;
}

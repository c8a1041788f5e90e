/** Whole-output tool-call parsing: the stream parser fed everything at once, so both agree by construction. */
import { ToolCallStreamParser, type ToolStreamOptions } from "./stream-parser.js";
import type { ToolCall, ToolCallDelta, ToolCallFormat, ToolCallParse, ToolStreamDelta } from "./types.js";

export function parseToolCalls(text: string, format: ToolCallFormat, opts: ToolStreamOptions = {}): ToolCallParse {
  const p = new ToolCallStreamParser(format, opts);
  return mergeToolDeltas([p.push(text), p.finish()]);
}

/** Folds stream deltas into the final content and tool calls (what an OpenAI client does with a stream). */
export function mergeToolDeltas(deltas: Iterable<ToolStreamDelta>): ToolCallParse {
  let content = "";
  const calls: ToolCall[] = [];
  for (const d of deltas) {
    content += d.content;
    for (const t of d.toolCalls) addDelta(calls, t);
  }
  return { content, toolCalls: calls };
}

function addDelta(calls: ToolCall[], t: ToolCallDelta): void {
  let c = calls[t.index];
  if (c === undefined) {
    c = calls[t.index] = { id: t.id ?? "", type: "function", function: { name: "", arguments: "" } };
  }
  if (t.id !== undefined) c.id = t.id;
  if (t.function.name !== undefined) c.function.name += t.function.name;
  if (t.function.arguments !== undefined) c.function.arguments += t.function.arguments;
}

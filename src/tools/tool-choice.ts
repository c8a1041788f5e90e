/**
 * `tools` and `tool_choice` around the model: checking tool definitions, preparing
 * messages for chat templates, and the structured-output constraint that forces a
 * call when tool_choice is "required" or names a function (as vLLM does).
 */
import { OptionError } from "../errors.js";
import type { ConstraintSpec } from "../structured/spec.js";
import { randomCallId } from "./stream-parser.js";
import type { ToolCall, ToolChoice, ToolDefinition } from "./types.js";

/** Checks OpenAI tool definitions; throws OptionError naming the bad entry. */
export function checkTools(tools: unknown, field = "tools"): ToolDefinition[] {
  if (!Array.isArray(tools)) throw new OptionError(field, "expected an array of {type: \"function\", function: {name, description?, parameters?}}");
  const names = new Set<string>();
  return tools.map((t, i) => {
    const f = (t as { function?: Record<string, unknown> })?.function;
    if ((t as { type?: unknown })?.type !== "function" || typeof f !== "object" || f === null) throw new OptionError(`${field}[${i}]`, "expected {type: \"function\", function: {...}}");
    if (typeof f.name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(f.name)) throw new OptionError(`${field}[${i}].function.name`, "expected 1-64 letters, digits, _ . or -");
    if (names.has(f.name)) throw new OptionError(`${field}[${i}].function.name`, `"${f.name}" is defined twice`);
    names.add(f.name);
    if (f.parameters !== undefined && (typeof f.parameters !== "object" || f.parameters === null || Array.isArray(f.parameters))) {
      throw new OptionError(`${field}[${i}].function.parameters`, "expected a JSON schema object");
    }
    return t as ToolDefinition;
  });
}

/** Checks tool_choice against the tools. */
export function checkToolChoice(choice: unknown, tools: readonly ToolDefinition[], field = "tool_choice"): ToolChoice {
  if (choice === undefined || choice === null) return tools.length > 0 ? "auto" : "none";
  if (choice === "none" || choice === "auto" || choice === "required") {
    if (choice === "required" && tools.length === 0) throw new OptionError(field, "\"required\" needs at least one tool");
    return choice;
  }
  const name = (choice as { function?: { name?: unknown } })?.function?.name;
  if ((choice as { type?: unknown })?.type !== "function" || typeof name !== "string") throw new OptionError(field, "expected \"none\", \"auto\", \"required\" or {type: \"function\", function: {name}}");
  if (!tools.some((t) => t.function.name === name)) throw new OptionError(field, `names "${name}", which is not among the tools`);
  return { type: "function", function: { name } };
}

/**
 * Messages the way Hugging Face chat templates expect them: an assistant's
 * tool_calls carry arguments as objects (templates write them with tojson), not as
 * the JSON strings OpenAI sends.
 */
export function messagesForTemplate<M extends Record<string, unknown>>(messages: readonly M[]): M[] {
  return messages.map((m) => {
    const calls = m.tool_calls;
    if (!Array.isArray(calls)) return m;
    const fixed = calls.map((c: { function?: { arguments?: unknown } }) => {
      const args = c?.function?.arguments;
      if (typeof args !== "string") return c;
      try {
        return { ...c, function: { ...c.function, arguments: JSON.parse(args) as unknown } };
      } catch {
        return c; // not JSON: leave it for the template to print as is
      }
    });
    return { ...m, tool_calls: fixed };
  });
}

const paramsOf = (t: ToolDefinition) => t.function.parameters ?? { type: "object" };

/**
 * The constraint that makes the model call a tool: for a named function, its
 * arguments object; for "required", a JSON array of {name, parameters} (one or more
 * calls). Null for "auto" and "none" (the model chooses; parse its output).
 */
export function toolChoiceConstraint(tools: readonly ToolDefinition[], choice: ToolChoice): ConstraintSpec | null {
  if (choice === "auto" || choice === "none") return null;
  if (choice === "required") {
    const anyOf = tools.map((t) => ({
      type: "object",
      properties: { name: { const: t.function.name }, parameters: paramsOf(t) },
      required: ["name", "parameters"],
      additionalProperties: false,
    }));
    return { type: "json_schema", schema: { type: "array", minItems: 1, items: anyOf.length === 1 ? anyOf[0] : { anyOf } } };
  }
  const tool = tools.find((t) => t.function.name === choice.function.name)!;
  return { type: "json_schema", schema: paramsOf(tool) };
}

/** The tool calls in an output generated under toolChoiceConstraint (null when it is not complete JSON, e.g. cut by max_tokens). */
export function constrainedToolCalls(text: string, choice: ToolChoice, makeId: (index: number) => string = randomCallId): ToolCall[] | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof choice === "object") return [{ id: makeId(0), type: "function", function: { name: choice.function.name, arguments: JSON.stringify(v) } }];
  if (!Array.isArray(v)) return null;
  return v.map((c: { name: string; parameters: unknown }, i) => ({ id: makeId(i), type: "function", function: { name: c.name, arguments: JSON.stringify(c.parameters) } }));
}

/** Which tool-call format a chat template teaches its model, from markers in the template text. */
import { OptionError } from "../errors.js";
import { TOOL_CALL_FORMATS, type ToolCallFormat } from "./types.js";

/** The format the template's markers point to, or null when it shows none. */
export function detectToolCallFormat(template: string | null | undefined): ToolCallFormat | null {
  if (!template) return null;
  if (template.includes("<tool_call>")) return "hermes";
  if (template.includes("[TOOL_CALLS]")) return "mistral";
  if (template.includes("<|python_tag|>") || (template.includes("<|start_header_id|>") && template.includes('"parameters"'))) return "llama3_json";
  return null;
}

/**
 * An explicit override wins; else the template's markers; else null (tool calls are
 * then not parsed: the server should refuse `tools`, or pass an override).
 */
export function resolveToolCallFormat(template: string | null | undefined, override?: string | null): ToolCallFormat | null {
  if (override !== undefined && override !== null) {
    if (!(TOOL_CALL_FORMATS as readonly string[]).includes(override)) {
      throw new OptionError("tool call format", `got ${JSON.stringify(override)}; expected one of ${TOOL_CALL_FORMATS.join(", ")}`);
    }
    return override as ToolCallFormat;
  }
  return detectToolCallFormat(template);
}

/**
 * OpenAI's `response_format` (and vLLM's guided_* extras) -> a ConstraintSpec, for
 * the server. Shapes follow the OpenAI API:
 *   {type: "text"} -> null; {type: "json_object"};
 *   {type: "json_schema", json_schema: {name, schema, strict?, description?}}.
 */
import { OptionError } from "../errors.js";
import type { ConstraintSpec } from "./spec.js";

export function responseFormatToConstraint(rf: unknown, field = "response_format"): ConstraintSpec | null {
  if (rf === undefined || rf === null) return null;
  if (typeof rf !== "object" || Array.isArray(rf)) throw new OptionError(field, "expected an object with a `type`");
  const o = rf as Record<string, unknown>;
  switch (o.type) {
    case "text":
      return null;
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      const js = o.json_schema as Record<string, unknown> | undefined;
      if (typeof js !== "object" || js === null || Array.isArray(js)) throw new OptionError(`${field}.json_schema`, "expected an object {name, schema}");
      const schema = js.schema ?? {};
      if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new OptionError(`${field}.json_schema.schema`, "expected a JSON schema object");
      return { type: "json_schema", schema: schema as Record<string, unknown> };
    }
    default:
      throw new OptionError(`${field}.type`, `got ${JSON.stringify(o.type)}; expected "text", "json_object" or "json_schema"`);
  }
}

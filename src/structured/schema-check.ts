/**
 * JSON Schema validity and validation through ajv: the dialect follows `$schema`
 * (draft-07 and older keywords, else 2020-12). Used to refuse malformed schemas
 * with ajv's own words, and to check outputs (tests, callers who want to verify).
 */
import { Ajv, type ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";

let draft7: Ajv | undefined;
let draft2020: Ajv2020 | undefined;

function ajvFor(schema: unknown): Ajv | Ajv2020 {
  const dialect = typeof schema === "object" && schema !== null ? (schema as { $schema?: unknown }).$schema : undefined;
  // formats are checked by the constraint itself where supported; unknown ones are annotations
  const opts = { strict: false, validateFormats: false, allErrors: false };
  if (typeof dialect === "string" && /draft-0[4-7]/.test(dialect)) return (draft7 ??= new Ajv(opts));
  return (draft2020 ??= new Ajv2020(opts));
}

/** Null when the schema is well-formed, else ajv's description of what is wrong. */
export function schemaProblem(schema: unknown): string | null {
  if (typeof schema === "boolean") return null;
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return "a JSON schema must be an object (or true/false)";
  const ajv = ajvFor(schema);
  let ok: boolean;
  try {
    // draft-04 style $schema ids are unknown to ajv: check the rest against its meta-schema
    const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
    ok = ajv.validateSchema(rest) as boolean;
  } catch (e) {
    return (e as Error).message;
  }
  return ok ? null : ajv.errorsText(ajv.errors, { dataVar: "schema" });
}

/** A validator for outputs (parsed JSON values) against the schema. */
export function schemaValidator(schema: unknown): ValidateFunction {
  const ajv = ajvFor(schema);
  if (typeof schema === "object" && schema !== null && !Array.isArray(schema)) {
    const { $schema: _ignored, ...rest } = schema as Record<string, unknown>;
    return ajv.compile(rest);
  }
  return ajv.compile(schema as boolean);
}

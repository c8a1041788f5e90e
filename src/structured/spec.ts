/**
 * What a caller may ask the output to be, checked once up front so a bad schema or
 * pattern is an OptionError naming the field and the reason (the server's 400),
 * never a failure in the middle of decoding.
 */
import { OptionError } from "../errors.js";
import { parseRegex, RegexCompileError } from "./char-dfa.js";
import { alt, escapeRegex } from "./json-regex-parts.js";
import { SchemaError, schemaToRegex } from "./json-schema-regex.js";
import type { JsonRoot } from "./json-machine.js";
import { Lru } from "./lru.js";
import { schemaProblem } from "./schema-check.js";
import { stripAnchors } from "./string-pattern.js";

export type ConstraintSpec =
  | { type: "json_schema"; schema: Record<string, unknown> | boolean }
  | { type: "json_object" }
  | { type: "regex"; pattern: string }
  | { type: "choice"; choices: string[] };

/** What the spec compiles to: a regex (-> DFA), or the unbounded JSON automaton. */
export type ConstraintTarget = { kind: "regex"; source: string } | { kind: "json"; root: JsonRoot };

export interface NormalizedConstraint {
  spec: ConstraintSpec;
  /** Canonical JSON of the spec (object keys sorted): the cache key. */
  key: string;
  target: ConstraintTarget;
}

const targets = new Lru<string, ConstraintTarget>(256);

/** Checks a constraint spec and works out its target; throws OptionError naming `field`. */
export function normalizeConstraint(v: unknown, field = "constraint"): NormalizedConstraint {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new OptionError(field, "expected an object like {type: \"json_schema\", schema}, {type: \"json_object\"}, {type: \"regex\", pattern} or {type: \"choice\", choices}");
  const o = v as Record<string, unknown>;
  const allow = (...keys: string[]) => {
    const extra = Object.keys(o).filter((k) => k !== "type" && !keys.includes(k));
    if (extra.length > 0) throw new OptionError(`${field}.${extra[0]}`, `unknown field for a ${String(o.type)} constraint`);
  };
  let spec: ConstraintSpec;
  switch (o.type) {
    case "json_schema": {
      allow("schema");
      const problem = schemaProblem(o.schema);
      if (problem !== null) throw new OptionError(`${field}.schema`, `invalid JSON schema: ${problem}`);
      spec = { type: "json_schema", schema: o.schema as Record<string, unknown> | boolean };
      break;
    }
    case "json_object":
      allow();
      spec = { type: "json_object" };
      break;
    case "regex":
      allow("pattern");
      if (typeof o.pattern !== "string" || o.pattern.length === 0) throw new OptionError(`${field}.pattern`, "expected a non-empty string (a JavaScript regular expression, without slashes or flags)");
      spec = { type: "regex", pattern: o.pattern };
      break;
    case "choice":
      allow("choices");
      if (!Array.isArray(o.choices) || o.choices.length === 0 || !o.choices.every((c) => typeof c === "string" && c.length > 0)) {
        throw new OptionError(`${field}.choices`, "expected a non-empty array of non-empty strings");
      }
      spec = { type: "choice", choices: [...(o.choices as string[])] };
      break;
    default:
      throw new OptionError(`${field}.type`, `got ${JSON.stringify(o.type)}; expected "json_schema", "json_object", "regex" or "choice"`);
  }
  const key = canonicalJson(spec);
  let target = targets.get(key);
  if (target === undefined) {
    target = targetOf(spec, field);
    targets.set(key, target);
  }
  return { spec, key, target };
}

function targetOf(spec: ConstraintSpec, field: string): ConstraintTarget {
  switch (spec.type) {
    case "json_object":
      return { kind: "json", root: "object" };
    case "choice":
      return { kind: "regex", source: alt(spec.choices.map(escapeRegex)) };
    case "regex": {
      const { body, start, end } = stripAnchors(spec.pattern);
      const source = start || end ? body : spec.pattern;
      try {
        parseRegex(source);
      } catch (e) {
        throw new OptionError(`${field}.pattern`, (e as Error).message);
      }
      return { kind: "regex", source };
    }
    case "json_schema": {
      const free = freeRoot(spec.schema);
      if (free !== null) return { kind: "json", root: free };
      try {
        return { kind: "regex", source: schemaToRegex(spec.schema) };
      } catch (e) {
        if (e instanceof SchemaError || e instanceof RegexCompileError) throw new OptionError(`${field}.schema`, e.message, "simplify the schema or use {type: \"json_object\"}");
        throw e;
      }
    }
  }
}

/** Schemas that allow any value, object or array at the top go to the unbounded JSON automaton. */
function freeRoot(s: Record<string, unknown> | boolean): JsonRoot | null {
  if (s === true) return "any";
  if (s === false) return null;
  const keys = Object.keys(s).filter((k) => !["$schema", "$id", "title", "description", "$comment"].includes(k));
  if (keys.length === 0) return "any";
  if (keys.length === 1 && (s.type === "object" || s.type === "array")) return s.type;
  if (keys.length === 2 && s.type === "object" && s.additionalProperties === true) return "object";
  return null;
}

/** JSON with object keys sorted, so equal specs give equal cache keys. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

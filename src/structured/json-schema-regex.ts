/**
 * JSON Schema -> a regex whose every match is compact JSON that validates, after
 * outlines' json_schema.to_regex. Objects list their declared properties in schema
 * order (optional ones may be left out), so the language stays regular and small.
 * A keyword that would let invalid output through is refused with the reason, never
 * silently ignored.
 */
import {
  BOOLEAN, COLON, COMMA, INTEGER, JSON_STRING, NULL, NUMBER, STRING_CHAR,
  alt, integerRange, jsonLiteral, numberRange,
} from "./json-regex-parts.js";
import { embedPattern } from "./string-pattern.js";

/** The schema asks for something this compiler cannot guarantee. */
export class SchemaError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

type Schema = boolean | Record<string, unknown>;

/** Nesting depth of free-form values ({} or an object without properties). */
export const ANY_VALUE_DEPTH = 3;

const IGNORED = new Set([
  "$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default", "examples",
  "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "format", "strict", "discriminator", "$anchor",
]);
const HANDLED = new Set([
  "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "nullable",
  "properties", "required", "additionalProperties",
  "items", "prefixItems", "minItems", "maxItems", "additionalItems",
  "minLength", "maxLength", "pattern",
  "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
]);

const FORMATS: Record<string, string> = {
  date: String.raw`[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])`,
  time: String.raw`(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])`,
  uuid: "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
  email: String.raw`[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,4}\.[A-Za-z]{2,24}`,
  ipv4: String.raw`(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])`,
};
FORMATS["date-time"] = `${FORMATS.date}T${FORMATS.time}`;

export function schemaToRegex(schema: unknown): string {
  return new Walker(schema).value(schema, "schema", []);
}

/** Any JSON value, nested at most `depth` containers deep. */
export function anyValueRegex(depth: number): string {
  const prim = [JSON_STRING, NUMBER, BOOLEAN, NULL];
  if (depth <= 0) return alt(prim);
  const v = anyValueRegex(depth - 1);
  return alt([...prim, freeObject(v), list(v, 0, null)]);
}

/** `{"key": v, ...}` with any keys. */
function freeObject(v: string): string {
  const entry = `${JSON_STRING}${COLON}${v}`;
  return String.raw`\{(?:${entry}(?:${COMMA}${entry})*)?\}`;
}

/** `[v, ...]` with min..max items (max null = unbounded). */
function list(v: string, min: number, max: number | null): string {
  if (max === 0) return String.raw`\[\]`;
  const rest = max === null ? `(?:${COMMA}${v}){${Math.max(min - 1, 0)},}` : `(?:${COMMA}${v}){${Math.max(min - 1, 0)},${max - 1}}`;
  const body = `${v}${rest}`;
  return String.raw`\[${min === 0 ? `(?:${body})?` : body}\]`;
}

class Walker {
  constructor(private readonly root: unknown) {}

  value(s: unknown, path: string, refs: string[]): string {
    if (s === true) return anyValueRegex(ANY_VALUE_DEPTH);
    if (s === false) throw new SchemaError(path, "the schema `false` allows no value");
    if (typeof s !== "object" || s === null || Array.isArray(s)) throw new SchemaError(path, "a schema must be an object or a boolean");
    const o = s as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!HANDLED.has(k) && !IGNORED.has(k)) throw new SchemaError(path, `the keyword "${k}" is not supported by constrained decoding`);
    }
    if (o.$ref !== undefined) return this.ref(o, path, refs);
    const nullable = o.nullable === true ? [NULL] : [];
    if (o.const !== undefined) return jsonLiteral(o.const);
    if (o.enum !== undefined) {
      if (!Array.isArray(o.enum) || o.enum.length === 0) throw new SchemaError(path, "enum must be a non-empty array");
      return alt([...o.enum.map(jsonLiteral), ...nullable]);
    }
    if (o.anyOf !== undefined || o.oneOf !== undefined) {
      const key = o.anyOf !== undefined ? "anyOf" : "oneOf";
      const list = o[key];
      if (!Array.isArray(list) || list.length === 0) throw new SchemaError(path, `${key} must be a non-empty array`);
      const rest = Object.keys(o).filter((k) => k !== key && !IGNORED.has(k));
      if (rest.length > 0) throw new SchemaError(path, `${key} next to other keywords (${rest.join(", ")}) is not supported; move them into each branch`);
      return alt(list.map((b, i) => this.value(b, `${path}.${key}[${i}]`, refs)));
    }
    if (o.allOf !== undefined) {
      if (!Array.isArray(o.allOf) || o.allOf.length !== 1 || Object.keys(o).some((k) => k !== "allOf" && !IGNORED.has(k))) {
        throw new SchemaError(path, "allOf is supported only with a single schema and nothing beside it");
      }
      return this.value(o.allOf[0], `${path}.allOf[0]`, refs);
    }
    const types = this.types(o, path);
    return alt([...types.map((t) => this.typed(t, o, path, refs)), ...nullable]);
  }

  private types(o: Record<string, unknown>, path: string): string[] {
    const t = o.type;
    if (typeof t === "string") return [t];
    if (Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === "string")) return t as string[];
    if (t !== undefined) throw new SchemaError(path, "type must be a string or a non-empty array of strings");
    if (o.properties !== undefined || o.additionalProperties !== undefined || o.required !== undefined) return ["object"];
    if (o.items !== undefined || o.prefixItems !== undefined) return ["array"];
    if (o.pattern !== undefined || o.minLength !== undefined || o.maxLength !== undefined) return ["string"];
    if (o.minimum !== undefined || o.maximum !== undefined) return ["number"];
    return ["any"];
  }

  private typed(t: string, o: Record<string, unknown>, path: string, refs: string[]): string {
    switch (t) {
      case "string":
        return this.string(o, path);
      case "integer":
      case "number":
        return this.number(t, o, path);
      case "boolean":
        return BOOLEAN;
      case "null":
        return NULL;
      case "object":
        return this.object(o, path, refs);
      case "array":
        return this.array(o, path, refs);
      case "any":
        return anyValueRegex(ANY_VALUE_DEPTH);
      default:
        throw new SchemaError(path, `unknown type "${t}"`);
    }
  }

  private ref(o: Record<string, unknown>, path: string, refs: string[]): string {
    const ref = o.$ref;
    if (typeof ref !== "string" || !ref.startsWith("#")) throw new SchemaError(path, `only local $ref ("#/...") is supported, got ${JSON.stringify(ref)}`);
    if (refs.includes(ref)) throw new SchemaError(path, `recursive $ref ${ref} is not supported (the output language would not be regular)`);
    if (Object.keys(o).some((k) => k !== "$ref" && !IGNORED.has(k))) throw new SchemaError(path, "$ref next to other keywords is not supported");
    let target: unknown = this.root;
    for (const raw of ref.slice(1).split("/").filter((p) => p !== "")) {
      const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      target = typeof target === "object" && target !== null ? (target as Record<string, unknown>)[key] : undefined;
      if (target === undefined) throw new SchemaError(path, `$ref ${ref} points at nothing`);
    }
    return this.value(target, ref, [...refs, ref]);
  }

  private string(o: Record<string, unknown>, path: string): string {
    const min = count(o.minLength, `${path}.minLength`) ?? 0;
    const max = count(o.maxLength, `${path}.maxLength`);
    if (max !== null && max < min) throw new SchemaError(path, `maxLength ${max} is below minLength ${min}`);
    if (o.pattern !== undefined) {
      if (typeof o.pattern !== "string") throw new SchemaError(`${path}.pattern`, "must be a string");
      if (o.minLength !== undefined || o.maxLength !== undefined) throw new SchemaError(path, "pattern together with minLength/maxLength is not supported; put the length into the pattern");
      return `"${embedPattern(o.pattern, `${path}.pattern`)}"`;
    }
    if (typeof o.format === "string" && FORMATS[o.format] !== undefined && min === 0 && max === null) return `"${FORMATS[o.format]}"`;
    if (min === 0 && max === null) return JSON_STRING;
    return `"${STRING_CHAR}{${min},${max ?? ""}}"`;
  }

  private number(t: "integer" | "number", o: Record<string, unknown>, path: string): string {
    const bound = (k: string): number | null => {
      const v = o[k];
      if (v === undefined) return null;
      if (typeof v !== "number" || !Number.isFinite(v)) throw new SchemaError(`${path}.${k}`, "must be a finite number");
      return v;
    };
    // draft 4 wrote exclusiveMinimum: true next to minimum
    let lo = bound("minimum");
    let hi = bound("maximum");
    let loEx = false;
    let hiEx = false;
    if (typeof o.exclusiveMinimum === "boolean") loEx = o.exclusiveMinimum;
    else if (o.exclusiveMinimum !== undefined) (lo = Math.max(lo ?? -Infinity, bound("exclusiveMinimum")!)), (loEx = lo === o.exclusiveMinimum);
    if (typeof o.exclusiveMaximum === "boolean") hiEx = o.exclusiveMaximum;
    else if (o.exclusiveMaximum !== undefined) (hi = Math.min(hi ?? Infinity, bound("exclusiveMaximum")!)), (hiEx = hi === o.exclusiveMaximum);
    if (lo === null && hi === null) return t === "integer" ? INTEGER : NUMBER;
    try {
      if (t === "number") return numberRange({ lo, hi, loExclusive: loEx, hiExclusive: hiEx });
      const ilo = lo === null ? null : loEx ? Math.floor(lo) + 1 : Math.ceil(lo);
      const ihi = hi === null ? null : hiEx ? Math.ceil(hi) - 1 : Math.floor(hi);
      return integerRange(ilo, ihi);
    } catch (e) {
      throw new SchemaError(path, (e as Error).message);
    }
  }

  private object(o: Record<string, unknown>, path: string, refs: string[]): string {
    const props = o.properties ?? {};
    if (typeof props !== "object" || props === null || Array.isArray(props)) throw new SchemaError(`${path}.properties`, "must be an object");
    const required = o.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === "string")) throw new SchemaError(`${path}.required`, "must be an array of strings");
    const names = Object.keys(props);
    for (const r of required) {
      if (!names.includes(r)) throw new SchemaError(`${path}.required`, `"${r}" is required but not among the properties, so its value is unknown; declare it in properties`);
    }
    const extra = o.additionalProperties;
    if (names.length === 0) {
      if (extra === false) return String.raw`\{\}`;
      const v = extra === undefined || extra === true ? anyValueRegex(ANY_VALUE_DEPTH - 1) : this.value(extra, `${path}.additionalProperties`, refs);
      return freeObject(v);
    }
    // Declared properties in order; after the first one present, each needs a comma.
    const entry = names.map((n) => `${jsonLiteral(n)}${COLON}${this.value((props as Record<string, unknown>)[n], `${path}.properties.${n}`, refs)}`);
    const req = names.map((n) => required.includes(n));
    const after: string[] = new Array(names.length + 1).fill(""); // rest, a comma needed before the next
    const first: string[] = new Array(names.length + 1).fill(""); // rest, nothing emitted yet
    for (let i = names.length - 1; i >= 0; i--) {
      after[i] = req[i] ? `${COMMA}${entry[i]}${after[i + 1]}` : `(?:${COMMA}${entry[i]})?${after[i + 1]}`;
      first[i] = req[i] ? `${entry[i]}${after[i + 1]}` : `(?:${entry[i]}${after[i + 1]}|${first[i + 1]})`;
    }
    return String.raw`\{${first[0]}\}`;
  }

  private array(o: Record<string, unknown>, path: string, refs: string[]): string {
    const min = count(o.minItems, `${path}.minItems`) ?? 0;
    const max = count(o.maxItems, `${path}.maxItems`);
    if (max !== null && max < min) throw new SchemaError(path, `maxItems ${max} is below minItems ${min}`);
    const tuple = o.prefixItems ?? (Array.isArray(o.items) ? o.items : undefined);
    const itemSchema = Array.isArray(o.items) ? o.additionalItems : o.items;
    if (tuple === undefined) {
      const v = itemSchema === undefined || itemSchema === true ? anyValueRegex(ANY_VALUE_DEPTH - 1) : this.value(itemSchema, `${path}.items`, refs);
      return list(v, min, max);
    }
    if (!Array.isArray(tuple)) throw new SchemaError(`${path}.prefixItems`, "must be an array");
    // Every prefix item is written; more items only when minItems asks for them.
    const k = tuple.length;
    if (max !== null && max < k) throw new SchemaError(path, `maxItems ${max} is below the ${k} prefixItems, which are always written`);
    const parts = tuple.map((t, i) => this.value(t, `${path}.prefixItems[${i}]`, refs));
    if (min > k) {
      if (itemSchema === false) throw new SchemaError(path, `minItems ${min} needs more items than the ${k} prefixItems, but items is false`);
      const v = itemSchema === undefined || itemSchema === true ? anyValueRegex(ANY_VALUE_DEPTH - 1) : this.value(itemSchema, `${path}.items`, refs);
      for (let i = k; i < min; i++) parts.push(v);
    }
    return parts.length === 0 ? String.raw`\[\]` : String.raw`\[${parts.join(COMMA)}\]`;
  }
}

function count(v: unknown, path: string): number | null {
  if (v === undefined) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new SchemaError(path, "must be an integer >= 0");
  if (v > 10_000) throw new SchemaError(path, "must be at most 10000 (each allowed repetition is automaton states)");
  return v;
}

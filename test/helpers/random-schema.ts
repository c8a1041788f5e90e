/**
 * Random JSON schemas for structured-output tests: nested objects, arrays, enums,
 * integer and number ranges, strings with lengths, patterns and formats, required
 * and optional properties, anyOf and nullable types. Kept small enough that a
 * random-weight model usually finishes within the test's token budget.
 */
import { Rng } from "../../src/runtime/rng.js";

type Schema = Record<string, unknown>;

export function randomSchema(rng: Rng, depth = 0): Schema {
  const r = rng.nextFloat();
  if (depth < 2 && r < 0.35) return randomObject(rng, depth);
  if (depth < 2 && r < 0.45) return randomArray(rng, depth);
  return randomLeaf(rng);
}

export function randomObject(rng: Rng, depth: number): Schema {
  const n = 1 + int(rng, 3);
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = pick(rng, ["id", "name", "age", "tags", "kind", "x", "y", "ok", "note", "score"]) + (i > 0 ? String(i) : "");
    properties[name] = randomSchema(rng, depth + 1);
    if (rng.nextFloat() < 0.6) required.push(name);
  }
  const s: Schema = { type: "object", properties, required };
  if (rng.nextFloat() < 0.3) s.additionalProperties = false;
  return s;
}

function randomArray(rng: Rng, depth: number): Schema {
  const s: Schema = { type: "array", items: randomSchema(rng, depth + 1) };
  const min = int(rng, 2);
  if (rng.nextFloat() < 0.5) s.minItems = min;
  s.maxItems = min + int(rng, 3);
  return s;
}

function randomLeaf(rng: Rng): Schema {
  switch (int(rng, 9)) {
    case 0:
      return { type: "string", maxLength: 1 + int(rng, 6), ...(rng.nextFloat() < 0.5 ? { minLength: 1 } : {}) };
    case 1:
      return { type: "string", pattern: pick(rng, ["^[a-z]{1,4}$", "^[A-Z][0-9]{2}$", "^(ab|cd)+$", "^\\d{3}-\\d{2}$"]) };
    case 2:
      return { enum: pick(rng, [["red", "green", "blue"], [1, 2, 3], ["a", 1, null, true], [{ k: 1 }, [1, 2]]]) };
    case 3: {
      const lo = int(rng, 200) - 100;
      return { type: "integer", minimum: lo, maximum: lo + int(rng, 500) };
    }
    case 4:
      return { type: "integer", ...(rng.nextFloat() < 0.5 ? { exclusiveMinimum: 0 } : {}) };
    case 5:
      return { type: "number", minimum: pick(rng, [0, -5, 1]), maximum: pick(rng, [10, 100]) };
    case 6:
      return { type: "boolean" };
    case 7:
      return { type: ["string", "null"], maxLength: 3 };
    default:
      return { anyOf: [{ type: "integer", minimum: 0, maximum: 9 }, { const: "none" }] };
  }
}

function int(rng: Rng, n: number): number {
  return Math.floor(rng.nextFloat() * n);
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[int(rng, xs.length)];
}

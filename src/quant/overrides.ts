/**
 * Per-tensor precision overrides (`quant.overrides`): a map from a weight's name, or a
 * pattern with `*`, to the packed format that weight gets instead of the base --quant's
 * ("fp32": not packed, stored at the engine dtype). --quant auto writes them for its
 * per-layer-group mixes. An override sets the format only; how weights are rounded
 * (round-to-nearest or GPTQ on --calib-data) follows the base, so one calibration pass
 * serves every format in the mix.
 */
import { OptionError } from "../errors.js";
import type { QuantOptions } from "./options.js";

/** The format part of QuantOptions an override may set. */
export type QuantFormat = Pick<QuantOptions, "scheme" | "groupSize" | "asym">;
export type QuantOverride = QuantFormat | "fp32";
/** Tensor name or `*` pattern -> format. Exact names win over patterns; among patterns the first listed that matches. */
export type QuantOverrides = Record<string, QuantOverride>;

const FLAG = "quant.overrides";
const FORMAT_KEYS = new Set(["scheme", "groupSize", "asym"]);

/**
 * Checked overrides under base `base` (itself resolved); `resolveFormat` resolves one
 * format as --quant would (passed in: options.ts owns it and imports this file).
 */
export function resolveOverrides(base: QuantOptions, raw: unknown, resolveFormat: (f: QuantFormat) => QuantOptions | undefined): QuantOverrides {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new OptionError(FLAG, "wants an object { tensorNameOrPattern: format | \"fp32\" }");
  if (base.scheme === "w8a8") throw new OptionError(FLAG, "w8a8 smooths and quantizes the whole model together; it takes no per-tensor overrides", "use --quant int8-wo or int4-wo as the base");
  const out: QuantOverrides = {};
  for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
    if (key.trim() === "") throw new OptionError(FLAG, "an empty tensor name", "name a weight as `llmrt inspect --graph` shows it, e.g. blk.0.ffn_down.weight, or a pattern like blk.*.attn_qkv.weight");
    if (v === "fp32") {
      out[key] = "fp32";
      continue;
    }
    if (v === null || typeof v !== "object") throw new OptionError(FLAG, `${key}: wants a format { scheme, groupSize?, asym? } or "fp32", got ${JSON.stringify(v)}`);
    const extra = Object.keys(v).filter((k) => !FORMAT_KEYS.has(k) && (v as Record<string, unknown>)[k] !== undefined);
    if (extra.length) throw new OptionError(FLAG, `${key}: an override sets the format only (scheme, groupSize, asym), not ${extra.join(", ")}`, "rounding and calibration follow the base --quant");
    const f = v as QuantFormat;
    if (f.scheme === "w8a8") throw new OptionError(FLAG, `${key}: w8a8 applies to the whole model only`, "override with int8-wo or int4-wo");
    const r = resolveFormat({ scheme: f.scheme, groupSize: f.groupSize, asym: f.asym });
    if (!r) throw new OptionError(FLAG, `${key}: no scheme`, "give scheme int8-wo or int4-wo, or \"fp32\"");
    out[key] = r.scheme === "int4-wo" ? { scheme: r.scheme, groupSize: r.groupSize, asym: r.asym } : { scheme: r.scheme };
  }
  return out;
}

const patternCache = new Map<string, RegExp>();
function pattern(key: string): RegExp {
  let re = patternCache.get(key);
  if (!re) patternCache.set(key, (re = new RegExp(`^${key.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`)));
  return re;
}

/** The override that applies to `name`, or undefined. */
export function overrideFor(overrides: QuantOverrides | undefined, name: string): QuantOverride | undefined {
  if (!overrides) return undefined;
  if (Object.hasOwn(overrides, name)) return overrides[name];
  for (const [k, v] of Object.entries(overrides)) if (k.includes("*") && pattern(k).test(name)) return v;
  return undefined;
}

/** The quant options weight `name` is packed with: the base, its override's format, or undefined (not packed). */
export function quantFor(q: QuantOptions | undefined, name: string): QuantOptions | undefined {
  const o = overrideFor(q?.overrides, name);
  if (!q || o === undefined) return q;
  if (o === "fp32") return undefined;
  const { overrides: _, groupSize: __, asym: ___, ...rounding } = q;
  return { ...rounding, ...o };
}

/** Throws when a key names no weight the build would pack (a typo would otherwise pass silently). */
export function checkOverridesMatch(overrides: QuantOverrides | undefined, packable: Iterable<string>): void {
  if (!overrides) return;
  const names = [...packable];
  for (const key of Object.keys(overrides)) {
    if (!names.some((n) => n === key || (key.includes("*") && pattern(key).test(n)))) {
      throw new OptionError(FLAG, `"${key}" matches no linear-layer weight of this model`, `the packable weights are e.g. ${names.slice(0, 4).join(", ")}; see \`llmrt inspect --graph\``);
    }
  }
}

/** "int4 g32", "int4 g32 asym", "int8", "fp32": one format, short. */
export function formatLabel(f: QuantOverride | QuantOptions | undefined): string {
  if (f === undefined || f === "fp32") return "fp32";
  if (f.scheme === "int8-wo") return "int8";
  if (f.scheme === "w8a8") return "w8a8";
  return `int4 g${f.groupSize}${f.asym ? " asym" : ""}`;
}

/** One line for logs and inspect: the base and each override. */
export function describeOverrides(q: QuantOptions): string {
  const over = Object.entries(q.overrides ?? {}).map(([k, v]) => `${k}: ${formatLabel(v)}`);
  return `${formatLabel(q)}${q.method === "gptq" ? " gptq" : ""}${q.tuneSteps ? `, scales tuned ${q.tuneSteps} steps` : ""}${over.length ? `; overrides ${over.join(", ")}` : ""}`;
}

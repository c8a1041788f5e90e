/** `--quant`: which packed format the builder stores linear-layer weights in. */
import { OptionError } from "../errors.js";
import type { PackedDType, PackedLayout } from "./packed.js";

export type QuantScheme = "int8-wo" | "int4-wo";
export const QUANT_SCHEMES: readonly QuantScheme[] = ["int8-wo", "int4-wo"];
export const INT4_GROUP_SIZES = [32, 64, 128] as const;
export const DEFAULT_INT4_GROUP = 128;

export interface QuantOptions {
  scheme: QuantScheme;
  /** int4-wo: columns per scale (32, 64, 128); int8-wo: absent = per output channel. */
  groupSize?: number;
  /** int4-wo: a zero point per group. */
  asym?: boolean;
}

export function resolveQuant(q: Partial<QuantOptions> | undefined): QuantOptions | undefined {
  if (!q || q.scheme === undefined) {
    if (q?.groupSize !== undefined || q?.asym) throw new OptionError("--group-size", "needs --quant", "add --quant int4-wo");
    return undefined;
  }
  if (!QUANT_SCHEMES.includes(q.scheme)) throw new OptionError("--quant", `unknown scheme "${q.scheme}"`, `choose one of ${QUANT_SCHEMES.join(", ")}`);
  if (q.scheme === "int8-wo") {
    if (q.asym) throw new OptionError("--int4-asym", "applies to int4-wo only");
    if (q.groupSize !== undefined) throw new OptionError("--group-size", "int8-wo has one scale per output channel", "drop --group-size, or use --quant int4-wo");
    return { scheme: "int8-wo" };
  }
  const groupSize = q.groupSize ?? DEFAULT_INT4_GROUP;
  if (!(INT4_GROUP_SIZES as readonly number[]).includes(groupSize)) throw new OptionError("--group-size", `${groupSize} is not supported`, `choose one of ${INT4_GROUP_SIZES.join(", ")}`);
  return { scheme: "int4-wo", groupSize, asym: q.asym ?? false };
}

/** The packed dtype and layout of a [rows, cols] weight under `q`. */
export function packedFormatFor(q: QuantOptions, cols: number): { dtype: PackedDType; layout: PackedLayout } {
  if (q.scheme === "int8-wo") return { dtype: "int8", layout: { groupSize: cols, asym: false, scale: "f32" } };
  return { dtype: "int4", layout: { groupSize: q.groupSize!, asym: q.asym ?? false, scale: "f32" } };
}

/**
 * --quant auto: the candidate precisions for a target, the accuracy budget, the pick
 * (fastest within budget; fp32 always qualifies) and the table the build log shows.
 */
import type { EngineDType } from "../engine/options.js";
import { OptionError } from "../errors.js";
import { W8A8_TARGETS, type QuantOptions } from "./options.js";

export const DEFAULT_MAX_PPL_INCREASE = 0.01;

export interface Candidate {
  name: string;
  dtype: EngineDType;
  quant?: QuantOptions;
}

/** One measured (or failed) candidate. */
export interface CandidateResult {
  name: string;
  weightBytes?: number;
  ppl?: number;
  /** ppl / fp32 ppl - 1. */
  increase?: number;
  msPerToken?: number;
  withinBudget: boolean;
  /** Why the candidate could not be built or measured on this target. */
  error?: string;
  /** A per-layer-group mix (src/engine/auto-mix.ts): its assignment, short ("blocks 0-3: int4 g32; lm_head: int8"). */
  mix?: string;
}

/** "1%", "1", "0.5 %" -> a fraction (0.01, 0.01, 0.005). */
export function parseMaxPplIncrease(v: string | undefined, quant: string | undefined): number {
  if (v === undefined) return DEFAULT_MAX_PPL_INCREASE;
  if (quant !== "auto") throw new OptionError("--max-ppl-increase", "applies to --quant auto only", "add --quant auto, or drop --max-ppl-increase");
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*%?\s*$/i.exec(v);
  const pct = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(pct)) throw new OptionError("--max-ppl-increase", `wants a percentage like 1% or 0.5, got "${v}"`);
  if (pct < 0) throw new OptionError("--max-ppl-increase", `must be >= 0%, got ${v}`, "0% keeps only candidates as accurate as fp32");
  return pct / 100;
}

/** What --quant auto tries on `target`, fp32 first (the reference every increase is measured against). */
export function autoCandidates(target: string, withCalibration: boolean): Candidate[] {
  const out: Candidate[] = [
    { name: "fp32", dtype: "fp32" },
    { name: "bf16", dtype: "bf16" },
    { name: "fp16", dtype: "fp16" },
  ];
  if (target === "cuda") out.push({ name: "fp8", dtype: "fp8" });
  // with calibration text the weight-only candidates are GPTQ-calibrated on it, as `--quant int4-wo --calib-data` builds them
  const rounding = withCalibration ? { method: "gptq" as const } : {};
  out.push({ name: "int8-wo", dtype: "fp32", quant: { scheme: "int8-wo", ...rounding } });
  for (const g of [128, 64, 32]) out.push({ name: `int4-wo g${g}`, dtype: "fp32", quant: { scheme: "int4-wo", groupSize: g, asym: false, ...rounding } });
  // calibrated, the asymmetric layout (GPTQ picks each group's grid) measured the most accurate int4 (bench/RESULTS.md)
  if (withCalibration) out.push({ name: "int4-wo g32 asym", dtype: "fp32", quant: { scheme: "int4-wo", groupSize: 32, asym: true, ...rounding } });
  if (withCalibration && W8A8_TARGETS.includes(target)) out.push({ name: "w8a8", dtype: "fp32", quant: { scheme: "w8a8" } });
  return out;
}

/** The fastest candidate within budget; ties go to the earlier (higher-precision) one. results[0] is fp32. */
export function pickCandidate(results: readonly CandidateResult[]): number {
  let best = 0;
  results.forEach((r, i) => {
    if (r.withinBudget && r.msPerToken !== undefined && r.msPerToken < results[best].msPerToken!) best = i;
  });
  return best;
}

const bytes = (n?: number) => (n === undefined ? "-" : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} KB`);

/** The table the build log prints, one string per line; `chosen` is marked; each mix's assignment follows the table. */
export function formatAutoTable(results: readonly CandidateResult[], chosen: number, budget: number): string[] {
  const head = ["candidate", "weights", "ppl", "increase", "ms/token", "within budget"];
  const rows = results.map((r, i) => [
    `${i === chosen ? "* " : "  "}${r.name}`,
    bytes(r.weightBytes),
    r.ppl === undefined ? "-" : r.ppl.toFixed(4),
    r.increase === undefined ? "-" : `${r.increase >= 0 ? "+" : ""}${(100 * r.increase).toFixed(3)}%`,
    r.msPerToken === undefined ? "-" : r.msPerToken.toFixed(3),
    r.error ? `no (${r.error})` : r.withinBudget ? "yes" : `no (> ${(100 * budget).toFixed(2)}%)`,
  ]);
  const all = [["  " + head[0], ...head.slice(1)], ...rows];
  const widths = head.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const lines = all.map((r) => r.map((cell, c) => (c === 0 || c === r.length - 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd());
  for (const r of results) if (r.mix) lines.push(`  ${r.name}: ${r.mix}`);
  return lines;
}

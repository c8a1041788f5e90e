/**
 * The short table bench/device-check.sh prints last: what passed, and llmrt against
 * transformers and the measured HBM bandwidth, from the JSON files in OUT.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CheckRow } from "./correctness.js";

type Json = Record<string, unknown>;

function read(out: string, file: string): Json | null {
  const p = join(out, file);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, "utf8")) as Json;
  } catch {
    return null;
  }
}

const f = (x: unknown, d = 0) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "-");

export function summaryTable(out: string): string {
  const lines: string[] = [];
  const env = read(out, "env.json");
  if (env) lines.push(`device: ${String((env.device as Json)?.name ?? env.error ?? "?")}  driver ${String((env.device as Json)?.driverVersion ?? "-")}  libs ${JSON.stringify(env.libraries ?? {})}`);
  for (const file of ["correctness.json", "hf.json"]) {
    const c = read(out, file);
    if (!c) {
      lines.push(`${file}: missing (stage did not finish)`);
      continue;
    }
    const rows = (c.rows ?? []) as CheckRow[];
    const bad = rows.filter((r) => !r.ok);
    lines.push(`${file}: ${rows.length - bad.length}/${rows.length} passed${bad.length ? "; FAILED: " + bad.map((r) => `${r.check} (${r.detail})`).join(" | ") : ""}`);
  }
  for (const mode of ["quick", "big"]) {
    const s = read(out, `speed-${mode}.json`);
    if (!s) continue;
    const hf = read(out, `hf-bench-${mode}.json`);
    const hfShapes = (hf?.shapes ?? {}) as Record<string, Json>;
    lines.push(`speed (${mode}): HBM ${f(s.hbm_gbps)} GB/s measured by llmrt, ${f(hf?.hbm_gbps)} by torch`);
    lines.push("shape              variant  decode b1 tok/s (HF)   HBM%   c1 tok/s (HF)     c8 tok/s (HF)      c64 tok/s (HF)  x HF@64  TTFT/TPOT@64 ms");
    for (const r of (s.runs ?? []) as Json[]) {
      const h = hfShapes[String(r.shape)] ?? {};
      const d = (r.decode ?? {}) as Json;
      const tp = (r.throughput ?? []) as Json[];
      const at = (c: number) => tp.find((t) => t.concurrency === c) ?? {};
      const ratio = typeof at(64).output_tok_s === "number" && typeof h.c64_output_tok_s === "number" ? (at(64).output_tok_s as number) / (h.c64_output_tok_s as number) : NaN;
      lines.push(
        [
          String(r.shape).padEnd(18),
          String(r.variant).padEnd(8),
          `${f(Math.max(Number(d.decode_tok_s ?? NaN), Number(d.decode_device_greedy_tok_s ?? NaN)))} (${f(h.decode_tok_s)})`.padEnd(22),
          `${f(100 * Number(d.hbm_share ?? NaN))}%`.padEnd(6),
          `${f(at(1).output_tok_s)} (${f(h.c1_output_tok_s)})`.padEnd(17),
          `${f(at(8).output_tok_s)} (${f(h.c8_output_tok_s)})`.padEnd(18),
          `${f(at(64).output_tok_s)} (${f(h.c64_output_tok_s)})`.padEnd(15),
          f(ratio, 2).padEnd(8),
          `${f(at(64).ttft_p50_ms, 1)}/${f(at(64).tpot_p50_ms, 2)}`,
          r.error ? ` ERROR ${String(r.error)}` : "",
        ].join(" "),
      );
    }
  }
  return lines.join("\n");
}

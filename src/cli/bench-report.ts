/**
 * `--report FILE.html` of the bench commands: one self-contained page (no scripts, no
 * network) with the command line, machine, date, the summary figures and inline SVG charts.
 */
import { writeFileSync } from "node:fs";
import { machineLine } from "./machine.js";
import { barChart, cdfChart, escapeXml, lineChart } from "./svg-charts.js";

export interface Report {
  title: string;
  /** The command line as typed (see commandLine). */
  command: string;
  summary: Record<string, unknown>;
  /** Each one <svg> element. */
  charts: string[];
  machine?: string;
  date?: Date;
}

/** The arguments as one shell-like line: words with spaces or quotes are single-quoted. */
export function commandLine(argv: string[] = process.argv.slice(2)): string {
  return ["llmrt", ...argv].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

function cell(v: unknown): string {
  if (v !== null && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${String(x)}`).join(" · ");
  return String(v);
}

export function reportHtml(r: Report): string {
  const rows = Object.entries(r.summary).map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(cell(v))}</td></tr>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(r.title)}</title>
<style>body{font-family:sans-serif;max-width:700px;margin:2em auto;color:#111}code{background:#f3f4f6;padding:2px 4px;word-break:break-all}
table{border-collapse:collapse;margin:1em 0}th,td{border-bottom:1px solid #e5e7eb;padding:3px 10px;text-align:left;font-size:14px}th{font-weight:normal;color:#555}svg{display:block;margin:1.5em 0}</style>
</head><body>
<h1>${escapeXml(r.title)}</h1>
<p><code>${escapeXml(r.command)}</code></p>
<p>${escapeXml(r.machine ?? machineLine())}<br>${escapeXml((r.date ?? new Date()).toISOString())}</p>
<table>
${rows.join("\n")}
</table>
${r.charts.join("\n")}
</body></html>
`;
}

export function writeReport(file: string, r: Report): void {
  writeFileSync(file, reportHtml(r));
}

/** What throughput and serve runs record for their charts: latencies in ms, token arrivals in s since start. */
export interface RequestTimings {
  ttftMs: number[];
  itlMs: number[];
  tokens: { t: number; n: number }[];
  wallS: number;
}

/** TTFT and ITL CDFs, and output tokens/s over time in up to 30 bins. */
export function requestCharts(x: RequestTimings): string[] {
  const bins = Math.max(1, Math.min(30, x.tokens.length));
  const width = Math.max(x.wallS, 1e-9) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const { t, n } of x.tokens) counts[Math.min(bins - 1, Math.max(0, Math.floor(t / width)))] += n;
  const points = counts.map((c, i): [number, number] => [(i + 0.5) * width, c / width]);
  return [
    cdfChart("Time to first token", "TTFT (ms)", [{ name: "TTFT", values: x.ttftMs }]),
    cdfChart("Inter-token latency", "ITL (ms)", [{ name: "ITL", values: x.itlMs }]),
    lineChart("Output tokens/s over time", "time since start (s)", "output tok/s", [{ name: "output tok/s", points }]),
  ];
}

/** Prefill and decode time of each latency run (seconds in, ms drawn). */
export function latencyCharts(prefillS: number[], decodeS: number[]): string[] {
  const runs = prefillS.map((_, i) => `run ${i + 1}`);
  return [barChart("Time per run", "run", "ms", runs, [{ name: "prefill", values: prefillS.map((s) => s * 1000) }, { name: "decode (all tokens)", values: decodeS.map((s) => s * 1000) }])];
}

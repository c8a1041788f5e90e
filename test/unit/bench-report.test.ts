import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandLine, latencyCharts, reportHtml, requestCharts } from "../../src/cli/bench-report.js";
import { barChart, cdfChart, escapeXml } from "../../src/cli/svg-charts.js";
import { runCli } from "../helpers/cli.js";

const svgs = (html: string) => html.match(/<svg[\s>]/g)?.length ?? 0;

test("escapeXml escapes the five characters that matter in HTML text and attributes", () => {
  assert.equal(escapeXml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
});

test("the report shows command, machine, date and figures, one <svg> per chart, and no way to load anything", () => {
  const charts = requestCharts({ ttftMs: [5, 1, 3], itlMs: [0.5, 0.7, 0.2, 0.9], tokens: [{ t: 0.01, n: 2 }, { t: 0.2, n: 1 }], wallS: 0.25 });
  const html = reportHtml({
    title: "llmrt bench serve",
    command: commandLine(["bench", "serve", "--model", `<script>alert("x")</script>`]),
    summary: { output_tok_per_s: 1234.56, ttft_ms: { p50: 7.5, p90: 8.25, p99: 9.125 }, model: "a&b" },
    charts,
    machine: "Test CPU <fast>, 2 cores",
    date: new Date("2025-01-02T03:04:05Z"),
  });
  assert.equal(charts.length, 3);
  assert.equal(svgs(html), 3);
  for (const s of ["1234.56", "p50 7.5", "p90 8.25", "p99 9.125", "a&amp;b", "Test CPU &lt;fast&gt;, 2 cores", "2025-01-02T03:04:05.000Z"]) assert.ok(html.includes(s), `missing ${s}`);
  // the command line arrives escaped, never as markup
  assert.ok(html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|\bhref=|@import|url\(/i);
  assert.equal(latencyCharts([0.1, 0.2], [1, 1.5]).length, 1);
  assert.equal((latencyCharts([0.1, 0.2], [1, 1.5])[0].match(/<rect[^>]*fill="#/g) ?? []).length, 4 + 2); // 2 runs x 2 bars, and 2 legend swatches
});

test("chart titles, axis labels, group and series names are escaped", () => {
  const svg = barChart("<t>", "x&y", "'ms'", ["<run>"], [{ name: `"q"`, values: [1] }]) + cdfChart("c<d", "e>f", [{ name: "<s>", values: [1, 2] }]);
  for (const s of ["&lt;t&gt;", "x&amp;y", "&#39;ms&#39;", "&lt;run&gt;", "&quot;q&quot;", "c&lt;d", "e&gt;f", "&lt;s&gt; (2)"]) assert.ok(svg.includes(s), `missing ${s}`);
  assert.doesNotMatch(svg, /<(t|run|s)>|"q"|x&y/);
});

test("charts of an empty run still draw, with no NaN or Infinity in the SVG", () => {
  const html = requestCharts({ ttftMs: [], itlMs: [], tokens: [], wallS: 0 }).join("");
  assert.equal(svgs(html), 3);
  assert.doesNotMatch(html, /NaN|Infinity/);
});

test("commandLine quotes words with spaces or quotes as a shell would take them", () => {
  assert.equal(commandLine(["bench", "serve", "--url", "http://127.0.0.1:8000/", "--model", "my model", "--x", "it's"]), `llmrt bench serve --url http://127.0.0.1:8000/ --model 'my model' --x 'it'\\''s'`);
});

test("bench latency --report writes the run's figures and a per-run prefill/decode chart", () => {
  const file = join(mkdtempSync(join(tmpdir(), "llmrt-report-")), "latency.html");
  const r = runCli(["bench", "latency", "--model", "synthetic:tiny", "--prompt-tokens", "8", "--gen-tokens", "4", "--runs", "2", "--threads", "1", "--json", "--report", file]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);
  const html = readFileSync(file, "utf8");
  assert.equal(svgs(html), 1);
  assert.ok(html.includes(`<td>${out.decode_tok_per_s}</td>`));
  assert.ok(html.includes("llmrt bench latency --model synthetic:tiny"));
  assert.ok(html.includes("run 2") && !html.includes("run 3"));
});

test("bench throughput --report draws TTFT, ITL and tokens/s over time", () => {
  const file = join(mkdtempSync(join(tmpdir(), "llmrt-report-")), "throughput.html");
  const r = runCli(["bench", "throughput", "--model", "synthetic:tiny", "--requests", "4", "--input-len", "8", "--output-len", "4", "--threads", "1", "--json", "--report", file]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);
  const html = readFileSync(file, "utf8");
  assert.equal(svgs(html), 3);
  assert.ok(html.includes(`<td>${out.output_tok_per_s}</td>`));
  assert.ok(html.includes(`p50 ${out.ttft_ms.p50}`));
});

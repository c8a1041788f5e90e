/**
 * Small inline SVG charts for the bench HTML report: a CDF, a line chart and grouped
 * bars, each one self-contained <svg> string. Every label goes through escapeXml.
 */

/** Escapes text for HTML and SVG, both in element content and in quoted attributes. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const W = 640;
const H = 280;
const M = { l: 60, r: 16, t: 30, b: 42 };
const PW = W - M.l - M.r;
const PH = H - M.t - M.b;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

/** A round axis end at or above x: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten. */
function niceMax(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((m) => m * p >= x * (1 - 1e-12))! * p;
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toPrecision(2);
}

const px = (x: number, xMax: number) => (M.l + (x / xMax) * PW).toFixed(1);
const py = (y: number, yMax: number) => (M.t + PH - (y / yMax) * PH).toFixed(1);

/** Axes with ticks (x ticks at pixel positions), y in 4 steps, labels, title and legend around `body` (drawn in data units via px/py). */
function frame(title: string, xLabel: string, yLabel: string, xTicks: { at: number; label: string }[], yMax: number, names: string[], body: string): string {
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`];
  out.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const y = py((yMax * i) / 4, yMax);
    out.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y}" y2="${y}" stroke="#e5e7eb"/><text x="${M.l - 4}" y="${y}" dy="4" text-anchor="end">${escapeXml(fmt((yMax * i) / 4))}</text>`);
  }
  for (const t of xTicks) out.push(`<text x="${t.at.toFixed(1)}" y="${H - M.b + 14}" text-anchor="middle">${escapeXml(t.label)}</text>`);
  out.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${M.t + PH}" y2="${M.t + PH}" stroke="#111"/><line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${M.t + PH}" stroke="#111"/>`);
  out.push(`<text x="${M.l + PW / 2}" y="${H - 6}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${M.t + PH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`);
  names.forEach((n, i) => out.push(`<rect x="${W - M.r - 130}" y="${M.t + 4 + 14 * i}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${W - M.r - 116}" y="${M.t + 13 + 14 * i}">${escapeXml(n)}</text>`));
  out.push(body, "</svg>");
  return out.join("\n");
}

const ticks5 = (xMax: number) => [0, 1, 2, 3, 4].map((i) => ({ at: M.l + (PW * i) / 4, label: fmt((xMax * i) / 4) }));

/** Empirical CDFs: fraction of samples at or below x. */
export function cdfChart(title: string, xLabel: string, series: { name: string; values: number[] }[]): string {
  const xMax = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const body = series.map((s, i) => {
    const v = [...s.values].sort((a, b) => a - b);
    const pts = v.flatMap((x, k) => [`${px(x, xMax)},${py(k / v.length, 1)}`, `${px(x, xMax)},${py((k + 1) / v.length, 1)}`]);
    return pts.length ? `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${pts.join(" ")}"/>` : "";
  });
  return frame(title, xLabel, "fraction of samples", ticks5(xMax), 1, series.map((s) => `${s.name} (${s.values.length})`), body.join("\n"));
}

/** Lines through (x, y) points. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: { name: string; points: [number, number][] }[]): string {
  const xMax = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[0]))));
  const yMax = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const body = series.map((s, i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" points="${s.points.map(([x, y]) => `${px(x, xMax)},${py(y, yMax)}`).join(" ")}"/>`);
  return frame(title, xLabel, yLabel, ticks5(xMax), yMax, series.map((s) => s.name), body.join("\n"));
}

/** Bars side by side within each group (e.g. runs), one colour per series. */
export function barChart(title: string, xLabel: string, yLabel: string, groups: string[], series: { name: string; values: number[] }[]): string {
  const yMax = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const slot = PW / Math.max(1, groups.length);
  const w = (slot * 0.8) / Math.max(1, series.length);
  const body = series.flatMap((s, i) =>
    s.values.map((v, g) => {
      const x = M.l + slot * g + slot * 0.1 + w * i;
      const y = Number(py(v, yMax));
      return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${(M.t + PH - y).toFixed(1)}" fill="${COLORS[i % COLORS.length]}"><title>${escapeXml(`${s.name} ${groups[g]}: ${fmt(v)}`)}</title></rect>`;
    }),
  );
  return frame(title, xLabel, yLabel, groups.map((label, g) => ({ at: M.l + slot * (g + 0.5), label })), yMax, series.map((s) => s.name), body.join("\n"));
}

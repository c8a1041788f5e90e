/** Helpers every `llmrt bench` command shares: seeded draws, length specs, percentiles, progress, output. */
import cliProgress from "cli-progress";
import { OptionError } from "../errors.js";

/** Seeded uniform integers in [0, n) (mulberry32). */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** A uniform draw in (0, 1], never 0, so its log is finite. */
export function unitDraw(draw: (n: number) => number): number {
  return (draw(1 << 30) + 1) / (1 << 30);
}

/** "A" or "A,stdev" -> a sampler of lengths >= 1 around A. */
export function lengths(spec: string, flag: string, draw: (n: number) => number): () => number {
  const [mean, sd = 0] = spec.split(",").map(Number);
  if (!(mean >= 1) || !(sd >= 0)) throw new OptionError(flag, `wants LEN or LEN,STDEV with LEN >= 1, got "${spec}"`);
  return () => {
    // Box-Muller from two uniform draws
    const u = unitDraw(draw);
    const v = draw(1 << 30) / (1 << 30);
    return Math.max(1, Math.round(mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)));
  };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export const r2 = (x: number) => Math.round(x * 100) / 100;

/** p50 / p90 / p99, rounded to 0.01. */
export function stats(xs: number[]): { p50: number; p90: number; p99: number } {
  return { p50: r2(percentile(xs, 50)), p90: r2(percentile(xs, 90)), p99: r2(percentile(xs, 99)) };
}

export function bar(label: string, total: number, quiet: boolean) {
  if (quiet || !process.stderr.isTTY) return { update: (_: number) => {}, stop: () => {} };
  const b = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total}`, stream: process.stderr }, cliProgress.Presets.shades_classic);
  b.start(total, 0);
  return { update: (v: number) => b.update(v), stop: () => b.stop() };
}

export function printResult(result: Record<string, unknown>, json?: boolean): void {
  if (json) process.stdout.write(JSON.stringify(result) + "\n");
  else for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${typeof v === "object" ? JSON.stringify(v) : v}`);
}

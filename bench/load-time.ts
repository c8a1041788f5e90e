/**
 * How long `llmrt generate` takes to load a model on the cpu target: the first time (the
 * engine is built from the GGUF file and cached) and from the cache, per file type, each in a
 * fresh process as a user runs it (the built CLI in dist/: `npm run build` first). The models
 * are synthetic GGUF files of a shape (random weights, written once under the llmrt cache);
 * engines go to a temporary cache that is removed afterwards. Times are the CLI's own "load"
 * figure: the median over rounds (each round's figures in brackets).
 *
 *   node --import tsx bench/load-time.ts [--shape tinyllama-1.1b] [--dtypes q4_0,q8_0,bf16] [--rounds 2] [--threads 2]
 *     [--before DIR]
 *
 * --before DIR: also the CLI of another checkout (DIR/dist/src/cli/main.js, built), rounds
 * alternating, and the ratio before / now.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import type { TensorDType } from "../src/checkpoint/types.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { machineLine, median } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "tinyllama-1.1b" },
    dtypes: { type: "string", default: "q4_0,q8_0,bf16" },
    rounds: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    before: { type: "string" },
  },
});
const cliIn = (root: string) => {
  const cli = join(root, "dist", "src", "cli", "main.js");
  if (!existsSync(cli)) throw new Error(`load-time: ${cli} is missing: run npm run build there first`);
  return cli;
};
const clis: [string, string][] = [["now", cliIn(join(dirname(new URL(import.meta.url).pathname), ".."))], ...(a.before ? [["before", cliIn(a.before)] as [string, string]] : [])];
const config = syntheticSpecConfig(`synthetic:${a.shape}`);
if (!config) throw new Error(`load-time: unknown shape ${a.shape}`);
console.log(`command: node --import tsx bench/load-time.ts ${process.argv.slice(2).join(" ")}`.trimEnd());
console.log(`machine: ${machineLine()}`);

/** One `llmrt generate` in a fresh process with engines cached under `cache`: its load milliseconds. */
function loadMs(cli: string, model: string, cache: string): number {
  const args = [cli, "generate", "--model", model, "--target", "cpu", "--threads", a.threads!, "--prompt", "Hello", "--max-tokens", "2", "--temperature", "0", "--max-seq-len", "256"];
  const r = spawnSync(process.execPath, args, { env: { ...process.env, LLMRT_CACHE: cache }, encoding: "utf8" });
  const m = /load ([\d.]+) ms/.exec(r.stderr + r.stdout);
  if (r.status !== 0 || !m) throw new Error(`load-time: llmrt generate failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return Number(m[1]);
}

const cols = clis.map(([l]) => `first load s, ${l} | cached load s, ${l}`).join(" | ");
const ratios = a.before ? " | before / now: first, cached" : "";
console.log(`\n| ${a.shape} | file MB | ${cols}${ratios} |`);
console.log(`|---|---|${clis.map(() => "---|---|").join("")}${a.before ? "---|" : ""}`);
for (const dtype of a.dtypes!.split(",") as TensorDType[]) {
  const file = syntheticModelFile(config, "gguf", dtype);
  const first = new Map<string, number[]>(clis.map(([l]) => [l, []]));
  const cached = new Map<string, number[]>(clis.map(([l]) => [l, []]));
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const [label, cli] of r % 2 ? [...clis].reverse() : clis) {
      const cache = mkdtempSync(join(tmpdir(), "llmrt-load-time-"));
      try {
        symlinkSync(dirname(dirname(file.path)), join(cache, "synthetic")); // the same model file, a fresh engine cache
        first.get(label)!.push(loadMs(cli, file.path, cache));
        cached.get(label)!.push(loadMs(cli, file.path, cache));
      } finally {
        rmSync(cache, { recursive: true, force: true });
      }
    }
  }
  const s = (ms: number[]) => `${(median(ms) / 1000).toFixed(1)} (${ms.map((v) => (v / 1000).toFixed(1)).join(" / ")})`;
  const row = clis.map(([l]) => `${s(first.get(l)!)} | ${s(cached.get(l)!)}`).join(" | ");
  const ratio = (m: Map<string, number[]>) => (median(m.get("before")!) / median(m.get("now")!)).toFixed(2);
  console.log(`| ${dtype} | ${(statSync(file.path).size / 1e6).toFixed(0)} | ${row}${a.before ? ` | ${ratio(first)}x, ${ratio(cached)}x` : ""} |`);
}

/**
 * Engine build and load against loading the checkpoint directly, for a Llama-110M-shape
 * model with random weights (synthetic:llama-110m, written here as an HF safetensors
 * dir with the project's writer). Also kernels per step before/after fusion and arena
 * bytes before/after memory planning. Medians of N runs of wall and CPU (user + sys)
 * time; files are fsynced after writing and read once before timing, so loads read
 * from the page cache (as a server restart would) and no writeback competes.
 *   npx tsx bench/engine-build.ts [--runs 3] [--keep DIR]
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { writeHfCheckpoint } from "../src/checkpoint/write-hf-dir.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import type { EngineDType } from "../src/engine/options.js";
import { formatBytes } from "../src/engine/report.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../src/models/synthetic.js";
import { machineLine, median } from "./machine.js";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const runs = Number(arg("--runs") ?? 3);
const root = arg("--keep") ?? mkdtempSync(join(tmpdir(), "llmrt-bench-engine-"));

console.log(`command: npx tsx bench/engine-build.ts --runs ${runs}`);
console.log(`machine: ${machineLine()}`);

/** [wall ms, cpu ms] of one call. */
const time = (f: () => void): [number, number] => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  f();
  const c = process.cpuUsage(c0);
  return [performance.now() - t0, (c.user + c.system) / 1000];
};
const timeRuns = (f: () => void): string => {
  const t = Array.from({ length: runs }, () => time(f));
  return `${Math.round(median(t.map((x) => x[0])))} ms | ${Math.round(median(t.map((x) => x[1])))} ms`;
};
const ms = (x: number) => `${Math.round(x)} ms`;

/** Flushes a dir's files to disk and reads them once, so timed reads hit the page cache. */
function settle(dir: string): void {
  for (const n of readdirSync(dir)) {
    const fd = openSync(join(dir, n), "r+");
    fsyncSync(fd);
    closeSync(fd);
    readFileSync(join(dir, n));
  }
}

const config = syntheticConfig(SYNTHETIC_PRESETS["llama-110m"]);
const hfDir = join(root, "llama-110m-hf");
const [writeMs] = time(() => writeHfCheckpoint(hfDir, config, syntheticCheckpoint(config, 0)));
settle(hfDir);
const params = (() => {
  const c = openCheckpoint(hfDir);
  const n = c.tensors().reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  c.close();
  return n;
})();
console.log(`model: synthetic:llama-110m (${(params / 1e6).toFixed(1)}M params, hidden ${config.hiddenSize}, ${config.numLayers} layers, vocab ${config.vocabSize}); safetensors f32 written in ${ms(writeMs)}`);

const rows: [string, string][] = [];
// the baseline: open the checkpoint and read every tensor as float32
rows.push(["checkpoint: openCheckpoint + read every tensor (f32)", timeRuns(() => {
  const c = openCheckpoint(hfDir);
  for (const t of c.tensors()) c.readF32(t.name);
  c.close();
})]);
// the in-memory route the runtime used before engines: read + passes + fusion + plan + bind
rows.push(["checkpoint: Engine.fromCheckpoint (read, passes, fuse, bind)", timeRuns(() => {
  const c = openCheckpoint(hfDir);
  Engine.fromCheckpoint(c, { maxSeqLen: 1024, maxBatchTokens: 512, maxLogitRows: 16, numBlocks: 1 });
  c.close();
})]);

let report = null as ReturnType<typeof buildEngineDir>["report"] | null;
const dtypes: EngineDType[] = ["fp32", "fp16", "bf16"];
for (const dtype of dtypes) {
  const dir = join(root, `engine-${dtype}`);
  let bytes = 0;
  const t = timeRuns(() => {
    const c = openCheckpoint(hfDir);
    const m = buildEngineDir(c, dir, { dtype, maxBatchTokens: 512, maxSeqs: 16, maxSeqLen: 1024 });
    c.close();
    bytes = m.weights.bytes;
    report ??= m.report;
  });
  rows.push([`engine ${dtype}: llmrt build (weights.bin ${formatBytes(bytes)})`, t]);
  settle(dir);
}
for (const dtype of dtypes) {
  const dir = join(root, `engine-${dtype}`);
  rows.push([`engine ${dtype}: Engine.load, checksums verified`, timeRuns(() => Engine.load(dir, { numBlocks: 1 }))]);
  rows.push([`engine ${dtype}: Engine.load, verify off`, timeRuns(() => Engine.load(dir, { numBlocks: 1, verify: false }))]);
}

console.log("\n| step | median wall | median CPU (user+sys) |\n|---|---|---|");
for (const [what, t] of rows) console.log(`| ${what} | ${t} |`);
const r = report!;
console.log(`\nkernels per step: ${r.kernelsPerStep.before} -> ${r.kernelsPerStep.after} (per layer ${r.kernelsPerLayer.before} -> ${r.kernelsPerLayer.after})`);
console.log(`fusions: ${r.passes.filter((p) => p.summary).map((p) => p.summary).join("; ")}`);
console.log(`activation memory for 512 tokens / 16 logit rows per step: unfused graph, a buffer per tensor ${formatBytes(r.arena.unfusedNaiveBytes)}; fused graph, a buffer per tensor ${formatBytes(r.arena.naiveBytes)}; planned arena ${formatBytes(r.arena.bytes)}`);
if (!arg("--keep")) rmSync(root, { recursive: true, force: true });

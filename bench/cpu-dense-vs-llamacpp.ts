/**
 * One-token decode of dense engines (F16 / BF16 / F32 weights), llmrt's cpu target against
 * llama.cpp (node-llama-cpp), 1 thread each, in wall time and in this process's CPU time
 * (on a shared machine the CPU time is each engine's own work; wall time also counts the
 * time other processes held the core). Both run in this process on the synthetic GGUFs of
 * bench/compare-llamacpp.ts; rounds alternate the engines.
 *
 *   node --import tsx bench/cpu-dense-vs-llamacpp.ts [--shape llama-110m] [--dtypes f16,bf16,f32]
 *     [--rounds 3] [--prompt 512] [--gen 128] [--kernels a.wasm,b.wasm]
 *
 * --kernels runs one llmrt engine per kernel build (relaxed-SIMD .wasm files, e.g. built by
 * asc from an older assembly/ for an A/B); default: the current build.
 */
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { wasm } from "../src/backends/cpu/wasm-api.js";
import { kernelModule, type KernelModule } from "../src/backends/cpu/wasm-module.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { median } from "../src/cli/bench.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { engineDecodeRate, llamaCppDecodeRate, type Rate } from "./decode-rate.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtypes: { type: "string", default: "f16,bf16,f32" },
    rounds: { type: "string", default: "3" },
    prompt: { type: "string", default: "512" },
    gen: { type: "string", default: "128" },
    kernels: { type: "string" },
  },
});
const P = Number(a.prompt);
const G = Number(a.gen);
const config = syntheticSpecConfig(`synthetic:${a.shape}`)!;
const tokens = Array.from({ length: P + G }, (_, i) => 3 + ((i * 7919 + 13) % (config.vocabSize - 3)));
const ENGINE_DTYPE = { f16: "fp16", bf16: "bf16", f32: "fp32" } as const;

/** The llmrt kernel builds to run: each --kernels file (V8's relaxed-SIMD flag is set by kernelModule), else the current one. */
function kernelBuilds(): { name: string; km: KernelModule }[] {
  const current = kernelModule();
  if (!a.kernels) return [{ name: "llmrt", km: current }];
  return a.kernels.split(",").map((f) => ({ name: `llmrt ${basename(dirname(f))}/${basename(f)}`, km: { module: new wasm.Module(readFileSync(f)), simd: "relaxed" } }));
}

const { getLlama } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });

const fmt = (r: Rate[]) => `${median(r.map((x) => x[1])).toFixed(1)} (wall ${median(r.map((x) => x[0])).toFixed(1)})`;
const builds = kernelBuilds();
const rows: string[] = [];
for (const dt of a.dtypes.split(",") as (keyof typeof ENGINE_DTYPE)[]) {
  const path = syntheticModelFile(config, "gguf", dt as TensorDType).path;
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const ckpt = openCheckpoint(path);
  const engines = builds.map((b) =>
    Engine.fromCheckpoint(ckpt, { backend: new CpuBackend({ threads: 1, kernels: b.km }), dtype: ENGINE_DTYPE[dt], maxSeqLen: P + G + 1, maxSeqs: 1, maxBatchTokens: Math.max(P, 16), maxLogitRows: 1, blockSize: 16 }),
  );
  engines.forEach((e) => engineDecodeRate(e, tokens, P, G)); // warm-up
  await llamaCppDecodeRate(model, tokens, P, G);
  const cpp: Rate[] = [];
  const ours: Rate[][] = builds.map(() => []);
  for (let r = 0; r < Number(a.rounds); r++) {
    cpp.push(await llamaCppDecodeRate(model, tokens, P, G));
    engines.forEach((e, i) => ours[i].push(engineDecodeRate(e, tokens, P, G)));
    const each = builds.map((b, i) => `${b.name} ${ours[i].at(-1)!.map((x) => x.toFixed(1)).join(" / ")}`).join(", ");
    console.error(`${dt} round ${r + 1}: llama.cpp ${cpp.at(-1)!.map((x) => x.toFixed(1)).join(" / ")}, ${each} tok/s (wall / CPU time)`);
  }
  const cppCpu = median(cpp.map((x) => x[1]));
  for (const [i, b] of builds.entries()) rows.push(`| ${a.shape} ${dt.toUpperCase()} | ${fmt(cpp)} | ${b.name} | ${fmt(ours[i])} | ${(median(ours[i].map((x) => x[1])) / cppCpu).toFixed(2)} |`);
  ckpt.close();
  await model.dispose();
}
console.log(`command: node --import tsx bench/cpu-dense-vs-llamacpp.ts ${process.argv.slice(2).join(" ")}`.trim());
console.log(`machine: ${machineLine()}; 1 thread each; tg${G} after a ${P}-token prompt; median of ${a.rounds} alternating rounds`);
console.log("");
console.log(`| model | llama.cpp tok/s, CPU time (wall) | llmrt kernels | llmrt tok/s, CPU time (wall) | ratio (CPU time) |`);
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(r);

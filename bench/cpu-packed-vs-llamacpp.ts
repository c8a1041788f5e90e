/**
 * Decode of packed engines, llmrt's cpu target against llama.cpp (node-llama-cpp), 1 thread
 * each, timed both in wall time and in this process's CPU time. Both engines run in this
 * process with one compute thread (llama.cpp's runs beside an idle JS thread), so on a
 * shared, loaded machine the CPU time of the decode loop is what each engine's own work
 * took, while wall time also counts the time other processes held the core.
 * Same models as bench/compare-llamacpp.ts (the synthetic GGUFs, Q8_0 / Q4_0 kept packed,
 * int8-wo / int4-wo g32 from the F32 GGUF against llama.cpp on Q8_0 / Q4_0): a P-token
 * prompt, then G decode steps; rounds alternate the engines.
 *
 *   node --import tsx bench/cpu-packed-vs-llamacpp.ts [--shape llama-110m] [--dtypes q8_0,q4_0,int8-wo,int4-wo]
 *     [--rounds 3] [--prompt 512] [--gen 128] [--kv-dtype f32]
 */
import { parseArgs } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Token } from "node-llama-cpp";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import type { KvDType } from "../src/backends/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { median } from "../src/cli/bench.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import type { QuantOptions } from "../src/quant/options.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtypes: { type: "string", default: "q8_0,q4_0,int8-wo,int4-wo" },
    rounds: { type: "string", default: "3" },
    prompt: { type: "string", default: "512" },
    gen: { type: "string", default: "128" },
    "kv-dtype": { type: "string", default: "f32" },
  },
});
const P = Number(a.prompt);
const G = Number(a.gen);
const QUANT: Record<string, { quant: QuantOptions; peer: TensorDType; file: TensorDType }> = {
  q8_0: { quant: { scheme: "int8-wo" }, peer: "q8_0", file: "q8_0" },
  q4_0: { quant: { scheme: "int4-wo", groupSize: 32 }, peer: "q4_0", file: "q4_0" },
  "int8-wo": { quant: { scheme: "int8-wo" }, peer: "q8_0", file: "f32" },
  "int4-wo": { quant: { scheme: "int4-wo", groupSize: 32 }, peer: "q4_0", file: "f32" },
};
const config = syntheticSpecConfig(`synthetic:${a.shape}`)!;
const tokens = Array.from({ length: P + G }, (_, i) => 3 + ((i * 7919 + 13) % (config.vocabSize - 3)));
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

const { getLlama } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });

/** tok/s of G decode steps after the prompt: [wall, CPU time]. */
type Rate = [number, number];

async function cppDecode(model: Awaited<ReturnType<typeof llama.loadModel>>): Promise<Rate> {
  const ctx = await model.createContext({ contextSize: P + G + 16, batchSize: Math.max(P, 1), threads: 1, sequences: 1 });
  try {
    const seq = ctx.getSequence();
    let n = 0;
    let t = 0;
    let c = process.cpuUsage();
    for await (const _ of seq.evaluate(tokens.slice(0, P) as Token[], { temperature: 0 })) {
      if (n === 0) ((t = performance.now()), (c = process.cpuUsage()));
      if (++n > G) break;
    }
    return [G / ((performance.now() - t) / 1000), G / (cpuMs(process.cpuUsage(c)) / 1000)];
  } finally {
    await ctx.dispose();
  }
}

function ourDecode(engine: Engine): Rate {
  const seq = new Sequence(0, tokens.slice());
  new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, P + G);
  const step = (n: number) => {
    engine.forward(buildStep([{ seq, numNew: n, wantLogits: true }], engine.kv.blockSize));
    seq.numComputed += n;
  };
  step(P);
  const t = performance.now();
  const c = process.cpuUsage();
  for (let i = 0; i < G; i++) step(1);
  return [G / ((performance.now() - t) / 1000), G / (cpuMs(process.cpuUsage(c)) / 1000)];
}

const rows: string[] = [];
for (const dt of a.dtypes.split(",")) {
  const q = QUANT[dt];
  const model = await llama.loadModel({ modelPath: syntheticModelFile(config, "gguf", q.peer).path, gpuLayers: 0 });
  const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", q.file).path);
  const dir = mkdtempSync(join(tmpdir(), "llmrt-pvs-"));
  buildEngineDir(ckpt, dir, { target: "cpu", quant: q.quant, maxSeqLen: P + G + 1, maxSeqs: 1, maxBatchTokens: Math.max(P, 16), maxLogitRows: 1 });
  ckpt.close();
  const backend = new CpuBackend({ threads: 1 });
  const engine = Engine.load(dir, { backend, blockSize: 16, kvDtype: a["kv-dtype"] as KvDType });
  ourDecode(engine); // warm-up
  await cppDecode(model);
  const cpp: Rate[] = [];
  const ours: Rate[] = [];
  for (let r = 0; r < Number(a.rounds); r++) {
    cpp.push(await cppDecode(model));
    ours.push(ourDecode(engine));
    console.error(`${dt} round ${r + 1}: llama.cpp ${cpp.at(-1)!.map((x) => x.toFixed(1)).join(" / ")}, llmrt ${ours.at(-1)!.map((x) => x.toFixed(1)).join(" / ")} tok/s (wall / CPU time)`);
  }
  const f = (xs: number[]) => `${median(xs).toFixed(1)} (${Math.max(...xs).toFixed(1)})`;
  const ratio = (o: number[], c: number[]) => `${(median(o) / median(c)).toFixed(2)} (${(Math.max(...o) / Math.max(...c)).toFixed(2)})`;
  const col = (rs: Rate[], i: 0 | 1) => rs.map((r) => r[i]);
  rows.push(`| ${a.shape} ${dt.toUpperCase()} (llama.cpp ${q.peer.toUpperCase()}) | ${f(col(cpp, 0))} | ${f(col(ours, 0))} | ${ratio(col(ours, 0), col(cpp, 0))} | ${f(col(cpp, 1))} | ${f(col(ours, 1))} | ${ratio(col(ours, 1), col(cpp, 1))} |`);
  rmSync(dir, { recursive: true, force: true });
  await model.dispose();
}
console.log(`command: node --import tsx bench/cpu-packed-vs-llamacpp.ts ${process.argv.slice(2).join(" ")}`.trim());
console.log(`machine: ${machineLine()}; 1 thread each; median (best) of ${a.rounds} alternating rounds; tg${G} after a ${P}-token prompt, tok/s`);
console.log("");
console.log(`| model | wall llama.cpp | wall llmrt | ratio | CPU-time llama.cpp | CPU-time llmrt | ratio |`);
console.log(`|---|---|---|---|---|---|---|`);
for (const r of rows) console.log(r);

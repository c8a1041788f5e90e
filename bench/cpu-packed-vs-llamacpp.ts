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
import { CpuBackend } from "../src/backends/cpu/backend.js";
import type { KvDType } from "../src/backends/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { median } from "../src/cli/bench.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { PACKED_DTYPES, engineDecodeRate, llamaCppDecodeRate, type Rate } from "./decode-rate.js";
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
const config = syntheticSpecConfig(`synthetic:${a.shape}`)!;
const tokens = Array.from({ length: P + G }, (_, i) => 3 + ((i * 7919 + 13) % (config.vocabSize - 3)));

const { getLlama } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });

const rows: string[] = [];
for (const dt of a.dtypes.split(",")) {
  const q = PACKED_DTYPES[dt];
  const model = await llama.loadModel({ modelPath: syntheticModelFile(config, "gguf", q.peer).path, gpuLayers: 0 });
  const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", q.file).path);
  const dir = mkdtempSync(join(tmpdir(), "llmrt-pvs-"));
  buildEngineDir(ckpt, dir, { target: "cpu", quant: q.quant, maxSeqLen: P + G + 1, maxSeqs: 1, maxBatchTokens: Math.max(P, 16), maxLogitRows: 1 });
  ckpt.close();
  const backend = new CpuBackend({ threads: 1 });
  const engine = Engine.load(dir, { backend, blockSize: 16, kvDtype: a["kv-dtype"] as KvDType });
  engineDecodeRate(engine, tokens, P, G); // warm-up
  await llamaCppDecodeRate(model, tokens, P, G);
  const cpp: Rate[] = [];
  const ours: Rate[] = [];
  for (let r = 0; r < Number(a.rounds); r++) {
    cpp.push(await llamaCppDecodeRate(model, tokens, P, G));
    ours.push(engineDecodeRate(engine, tokens, P, G));
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

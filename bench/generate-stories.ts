/**
 * Single-sequence greedy generation speed on stories260K (GGUF), llmrt against
 * llama.cpp (node-llama-cpp, 1 thread) in the same run. Medians of N runs.
 *   npx tsx bench/generate-stories.ts [--runs 5] [--tokens 256]
 */
import { join } from "node:path";
import { LLM } from "../src/api/llm.js";
import { SHARED_DIR } from "../test/helpers/fixtures.js";
import { machineLine, median } from "./machine.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const runs = arg("--runs", 5);
const tokens = arg("--tokens", 256);
const gguf = join(SHARED_DIR, "models/stories260K-gguf/stories260K.gguf");

console.log(`command: npx tsx bench/generate-stories.ts --runs ${runs} --tokens ${tokens}`);
console.log(`machine: ${machineLine()}`);

async function llmrt(target: string): Promise<number[]> {
  const llm = await LLM.load(gguf, { maxSeqs: 1, maxSeqLen: 512, build: { target } });
  const rates: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const [r] = await llm.generate("", { temperature: 0, maxTokens: tokens, ignoreEos: true });
    const decodeS = r.metrics.e2eLatency! - r.metrics.timeToFirstToken!;
    if (i > 0) rates.push((r.outputs[0].tokenIds.length - 1) / decodeS); // first run warms the JIT
  }
  llm.close();
  return rates;
}

async function llamaCpp(): Promise<number[]> {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const rates: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const ctx = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1 });
    const seq = ctx.getSequence();
    let n = 0;
    let t0 = 0;
    for await (const _ of seq.evaluate([model.tokens.bos!], { temperature: 0 })) {
      if (n === 0) t0 = performance.now(); // decode rate: exclude the first (prompt) step
      if (++n >= tokens) break;
    }
    if (i > 0) rates.push((n - 1) / ((performance.now() - t0) / 1000));
    await ctx.dispose();
  }
  await model.dispose();
  return rates;
}

const reference = median(await llmrt("reference"));
const cpu = median(await llmrt("cpu"));
const peer = median(await llamaCpp());
console.log("| engine | decode tok/s (median) | vs llama.cpp |");
console.log("|---|---|---|");
console.log(`| llmrt, reference backend | ${reference.toFixed(0)} | ${(reference / peer).toFixed(2)}x |`);
console.log(`| llmrt, cpu backend (all cores) | ${cpu.toFixed(0)} | ${(cpu / peer).toFixed(2)}x |`);
console.log(`| llama.cpp (node-llama-cpp 3.21.1, 1 thread) | ${peer.toFixed(0)} | 1x |`);

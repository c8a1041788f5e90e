/**
 * One-sequence decode timing shared by the CPU decode benches: llmrt's engine and
 * llama.cpp's (node-llama-cpp) each prefill a P-token prompt, then decode G tokens; the
 * rate is taken in wall time and in this process's CPU time (on a shared machine the CPU
 * time is each engine's own work, wall time also the time other processes held the core).
 * Also the packed --dtypes these benches accept and the GGUFs each runs on.
 */
import type { LlamaModel, Token } from "node-llama-cpp";
import type { TensorDType } from "../src/checkpoint/types.js";
import type { Engine } from "../src/engine/engine.js";
import type { QuantOptions } from "../src/quant/options.js";
import type { GgufMix } from "../src/models/synthetic-files.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";

/** Decode tok/s: [wall, CPU time]. */
export type Rate = [number, number];

export const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

/**
 * Packed --dtypes: llmrt's --quant, the GGUF llama.cpp runs (`peer`) and the one llmrt builds
 * from (`file`: Q8_0 / Q4_0 kept packed, int8-wo / int4-wo g32 / w8a8 quantized from F32). The K-quants
 * have no --quant: a cpu build keeps the GGUF's Q4_K / Q5_K / Q6_K blocks as they are.
 */
export const PACKED_DTYPES: Record<string, { quant?: QuantOptions; peer: TensorDType | GgufMix; file: TensorDType | GgufMix }> = {
  q8_0: { quant: { scheme: "int8-wo" }, peer: "q8_0", file: "q8_0" },
  q4_0: { quant: { scheme: "int4-wo", groupSize: 32 }, peer: "q4_0", file: "q4_0" },
  "int8-wo": { quant: { scheme: "int8-wo" }, peer: "q8_0", file: "f32" },
  "int4-wo": { quant: { scheme: "int4-wo", groupSize: 32 }, peer: "q4_0", file: "f32" },
  // SmoothQuant int8 x int8 (calibrated on random tokens: the speed does not depend on them)
  w8a8: { quant: { scheme: "w8a8" }, peer: "q8_0", file: "f32" },
  q4_k: { peer: "q4_k", file: "q4_k" },
  q5_k: { peer: "q5_k", file: "q5_k" },
  q6_k: { peer: "q6_k", file: "q6_k" },
  q4_k_m: { peer: "q4_k_m", file: "q4_k_m" },
};

/** llmrt: prefill tokens[0, P), then G one-token steps; `afterPrompt` runs between them (e.g. clearing a profile). */
export function engineDecodeRate(engine: Engine, tokens: number[], P: number, G: number, afterPrompt?: () => void): Rate {
  const seq = new Sequence(0, tokens.slice(0, P + G));
  new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, P + G);
  const step = (n: number) => {
    engine.forward(buildStep([{ seq, numNew: n, wantLogits: true }], engine.kv.blockSize));
    seq.numComputed += n;
  };
  step(P);
  afterPrompt?.();
  const t = performance.now();
  const c = process.cpuUsage();
  for (let i = 0; i < G; i++) step(1);
  return [G / ((performance.now() - t) / 1000), G / (cpuMs(process.cpuUsage(c)) / 1000)];
}

/** llama.cpp, one thread: the same prompt, then G greedy tokens, timed from the first one. */
export async function llamaCppDecodeRate(model: LlamaModel, tokens: number[], P: number, G: number): Promise<Rate> {
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

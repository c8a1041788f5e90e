/**
 * llmrt's CPU backend against llama.cpp (node-llama-cpp 3.21.1) on the same GGUF files,
 * in one run, alternating engine by engine, with the same thread counts; prints each
 * figure, the ratio llmrt / llama.cpp, and the decode roofline (weight bytes per token /
 * measured memory read bandwidth) beside it, as a Markdown table for bench/RESULTS.md.
 *
 *   node --import tsx bench/compare-llamacpp.ts [--shape llama-110m] [--dtypes f32,f16]
 *     [--threads 1,2] [--rounds 3] [--prompt 512] [--gen 128] [--parallel 16] [--parallel-gen 32]
 *     [--kv-dtype f32] [--native .cache/llamacpp-native/bin]
 *
 * --shape is a synthetic preset (tiny, llama-110m, tinyllama-1.1b) or a JSON shape. The
 * GGUFs are its random-weight models, written once to the synthetic model cache
 * (src/models/synthetic-files.ts, as `llmrt bench --model-format gguf`) and reused.
 * --kv-dtype sets llmrt's KV cache; llama.cpp keeps its default (f16).
 *
 * Quantized entries of --dtypes: q8_0 / q4_0 run both engines on that GGUF (llmrt keeps
 * its blocks packed: an engine dir built for target cpu, loaded with packed int8 / int4
 * weights); int8-wo / int4-wo (g32) run llmrt on an engine quantized by `llmrt build --quant`
 * from the F32 GGUF, against llama.cpp on the Q8_0 / Q4_0 GGUF (the nearest format); w8a8 the
 * same against Q8_0 (SmoothQuant calibrated on fixed tokens: speed only); q4_k / q5_k /
 * q6_k run both on that GGUF (llmrt keeps its K-quant blocks packed: assembly/kquant.ts);
 * q4_k_m runs both on a GGUF in llama.cpp's Q4_K_M mix (Q6_K head, and attn_v / ffn_down of
 * half the layers; Q4_K elsewhere).
 *
 * --native DIR adds native llama.cpp (llama-bench, llama-batched-bench -kvu from DIR, built by
 * bench/build-llamacpp.sh from node-llama-cpp's own source bundle) to every round, on the same
 * GGUF and thread count, and prints a second table of llmrt against it.
 */
import { parseArgs } from "node:util";
import type { Token } from "node-llama-cpp";
import { CpuBackend, type CpuBound } from "../src/backends/cpu/backend.js";
import { OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import type { KvDType } from "../src/backends/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { measureLatency, measureThroughput, median, packedWeightBytesPerToken, weightBytesPerToken } from "../src/cli/bench.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig, type GgufMix } from "../src/models/synthetic-files.js";
import { PACKED_DTYPES } from "./decode-rate.js";
import { NativeLlamaCpp } from "./llamacpp-native.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtypes: { type: "string", default: "f32,f16" },
    threads: { type: "string", default: "1,2" },
    rounds: { type: "string", default: "3" },
    prompt: { type: "string", default: "512" },
    gen: { type: "string", default: "128" },
    parallel: { type: "string", default: "16" },
    "parallel-gen": { type: "string", default: "32" },
    "kv-dtype": { type: "string", default: "f32" },
    native: { type: "string" },
  },
});
const native = a.native ? new NativeLlamaCpp(a.native) : undefined;
const P = Number(a.prompt);
const G = Number(a.gen);
const rounds = Number(a.rounds);
const N = Number(a.parallel);
const NG = Number(a["parallel-gen"]);
const threadList = a.threads.split(",").map(Number);
const log = (s: string) => console.error(`compare: ${s}`);

/** Memory read bandwidth (GB/s) with `threads` threads: the best of several streaming sums over 512 MB (other load only lowers it). */
function readBandwidth(threads: number): number {
  const rt = new CpuRuntime({ threads, reserveBytes: 520 << 20 });
  try {
    const n = (512 << 20) / 4;
    const buf = rt.heap.alloc(n * 4);
    const out = rt.heap.alloc(64);
    rt.heap.f32(buf, n).fill(1);
    const ts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      rt.program.reset().emit(OP.READ_SUM, out, buf, n);
      rt.run();
      if (i > 0) ts.push((performance.now() - t) / 1000);
    }
    return (n * 4) / Math.min(...ts) / 1e9;
  } finally {
    rt.close();
  }
}

const { getLlama } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
type LlamaModel = Awaited<ReturnType<typeof llama.loadModel>>;

function randomTokens(n: number, vocab: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), 3 + (s % (vocab - 3))));
}

/** llama.cpp: prefill tok/s (prompt to first token) and decode tok/s of one sequence. */
async function cppLatency(model: LlamaModel, threads: number): Promise<{ prefill: number; decode: number }> {
  const ctx = await model.createContext({ contextSize: P + G + 16, batchSize: Math.max(P, 1), threads, sequences: 1 });
  try {
    const seq = ctx.getSequence();
    const t0 = performance.now();
    let first = 0;
    let n = 0;
    for await (const _ of seq.evaluate(randomTokens(P, vocab, 1) as Token[], { temperature: 0 })) {
      if (n === 0) first = performance.now();
      if (++n >= G) break;
    }
    return { prefill: P / ((first - t0) / 1000), decode: (n - 1) / ((performance.now() - first) / 1000) };
  } finally {
    await ctx.dispose();
  }
}

/** llama.cpp: aggregate decode tok/s of N sequences generating NG tokens each, in parallel (16-token prompts). */
async function cppParallel(model: LlamaModel, threads: number): Promise<number> {
  const ctx = await model.createContext({ contextSize: N * (16 + NG + 8), batchSize: 512, threads, sequences: N });
  try {
    const t0 = performance.now();
    const counts = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        let n = 0;
        for await (const _t of ctx.getSequence().evaluate(randomTokens(16, vocab, i + 7) as Token[], { temperature: 0 })) if (++n >= NG) break;
        return n;
      }),
    );
    return counts.reduce((x, y) => x + y, 0) / ((performance.now() - t0) / 1000);
  } finally {
    await ctx.dispose();
  }
}

function llmrtParallel(engine: Engine): number {
  const { wallS, recs } = measureThroughput(engine, Array.from({ length: N }, () => ({ input: 16, output: NG })), N, 512);
  return recs.reduce((n, r) => n + r.tokens, 0) / wallS;
}


let vocab = 32000;
const rows: string[] = [];
const nativeRows: string[] = [];
{
  const bw = Object.fromEntries(threadList.map((t) => [t, readBandwidth(t)]));
  log(`read bandwidth ${threadList.map((t) => `${t} thread(s) ${bw[t].toFixed(1)} GB/s`).join(", ")}`);
  const config = syntheticSpecConfig(`synthetic:${a.shape}`)!;
  vocab = config.vocabSize;
  for (const dt of a.dtypes.split(",")) {
    const q = PACKED_DTYPES[dt];
    const { path: file, written } = syntheticModelFile(config, "gguf", (q?.peer ?? dt) as TensorDType | GgufMix);
    log(`${written ? "wrote" : "reusing"} ${file}`);
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const ckpt = openCheckpoint(q && q.peer !== dt ? syntheticModelFile(config, "gguf", "f32").path : file);
    // packed engines go through an engine dir: in-memory builds keep no packed weights
    const engineDir = q ? mkdtempSync(join(tmpdir(), "llmrt-compare-")) : undefined;
    const calibration = q?.quant?.scheme === "w8a8" ? { tokens: Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) % config.vocabSize), source: "fixed pseudo-random tokens" } : undefined;
    if (engineDir) buildEngineDir(ckpt, engineDir, { target: "cpu", quant: q!.quant, maxSeqLen: Math.max(P + G, 16 + NG) + 1, maxSeqs: Math.max(1, N), maxBatchTokens: Math.max(P, 512), maxLogitRows: Math.max(1, N) }, { calibration });
    for (const threads of threadList) {
      // keep the bound graph to stop its threads when done
      const cpu = new CpuBackend({ threads });
      let bound: CpuBound | undefined;
      const backend = { name: cpu.name, packedDTypes: cpu.packedDTypes, bind: (...args: Parameters<CpuBackend["bind"]>) => (bound = cpu.bind(...args)) };
      const engine = engineDir ? Engine.load(engineDir, { backend, blockSize: 16, kvDtype: a["kv-dtype"] as KvDType }) : Engine.fromCheckpoint(ckpt, { backend, dtype: dt === "f32" ? "fp32" : dt === "f16" ? "fp16" : "bf16", maxSeqLen: Math.max(P + G, 16 + NG) + 1, maxSeqs: Math.max(1, N), maxBatchTokens: Math.max(P, 512), maxLogitRows: Math.max(1, N), blockSize: 16, kvDtype: a["kv-dtype"] as KvDType });
      const bytes = q ? packedWeightBytesPerToken(engine, bound!) : weightBytesPerToken(engine, dt === "f32" ? "fp32" : "fp16", (n) => bound?.packedDType(n));
      const m = { cppPre: [] as number[], cppDec: [] as number[], ourPre: [] as number[], ourDec: [] as number[], cppPar: [] as number[], ourPar: [] as number[], natPre: [] as number[], natDec: [] as number[], natPar: [] as number[] };
      for (let r = 0; r < rounds; r++) {
        // alternate: llama.cpp, then llmrt, each round
        const c = await cppLatency(model, threads);
        m.cppPre.push(c.prefill);
        m.cppDec.push(c.decode);
        const o = measureLatency(engine, P, G, 1);
        m.ourPre.push(P / o.prefill[0]);
        m.ourDec.push(G / o.decode[0]);
        if (N > 1) {
          m.cppPar.push(await cppParallel(model, threads));
          m.ourPar.push(llmrtParallel(engine));
        }
        if (native) {
          const nat = native.latency(file, P, G, threads);
          m.natPre.push(nat.prefill);
          m.natDec.push(nat.decode);
          if (N > 1) m.natPar.push(native.parallel(file, N, 16, NG, threads).tokPerS);
        }
        log(`${dt} ${threads}t round ${r + 1}: llama.cpp pp ${c.prefill.toFixed(1)} tg ${c.decode.toFixed(1)}; llmrt pp ${m.ourPre.at(-1)!.toFixed(1)} tg ${m.ourDec.at(-1)!.toFixed(1)}${N > 1 ? `; x${N}: ${m.cppPar.at(-1)!.toFixed(1)} vs ${m.ourPar.at(-1)!.toFixed(1)}` : ""}${native ? `; native pp ${m.natPre.at(-1)!.toFixed(1)} tg ${m.natDec.at(-1)!.toFixed(1)}${N > 1 ? ` x${N} ${m.natPar.at(-1)!.toFixed(1)}` : ""}` : ""}`);
      }
      bound?.close();
      const roof = (bw[threads] * 1e9) / bytes;
      const f = (x: number) => x.toFixed(1);
      // median, and best (other load on the machine only ever lowers a figure)
      const mb = (xs: number[]) => `${f(median(xs))} (${f(Math.max(...xs))})`;
      const ratio = (ours: number[], peer: number[]) => `${(median(ours) / median(peer)).toFixed(2)} (${(Math.max(...ours) / Math.max(...peer)).toFixed(2)})`;
      // one table row of llmrt against a peer's figures
      const row = (pre: number[], dec: number[], par: number[]) =>
        `| ${a.shape} ${dt.toUpperCase()} | ${threads} | ${mb(pre)} | ${mb(m.ourPre)} | ${ratio(m.ourPre, pre)} | ${mb(dec)} | ${mb(m.ourDec)} | ${ratio(m.ourDec, dec)} | ${f(roof)} (${f((100 * Math.max(...dec)) / roof)}% / ${f((100 * Math.max(...m.ourDec)) / roof)}%) |` +
        (N > 1 ? ` ${mb(par)} | ${mb(m.ourPar)} | ${ratio(m.ourPar, par)} |` : "");
      rows.push(row(m.cppPre, m.cppDec, m.cppPar));
      if (native) nativeRows.push(row(m.natPre, m.natDec, m.natPar));
    }
    ckpt.close();
    if (engineDir) rmSync(engineDir, { recursive: true, force: true });
    await model.dispose();
  }
  console.log(`command: node --import tsx bench/compare-llamacpp.ts ${process.argv.slice(2).join(" ")}`.trim());
  console.log(`machine: ${machineLine()}; read bandwidth ${threadList.map((t) => `${bw[t].toFixed(1)} GB/s on ${t} thread(s)`).join(", ")}`);
  console.log(`median (best) of ${rounds} alternating rounds; % of roofline from the best; pp${P} = prefill of ${P} tokens, tg${G} = decode of ${G} tokens (tok/s); x${N} = aggregate decode tok/s of ${N} sequences generating ${NG} tokens each`);
  const table = (peer: string, lines: string[]) => {
    console.log("");
    console.log(`| model | threads | pp${P} ${peer} | pp${P} llmrt | ratio | tg${G} ${peer} | tg${G} llmrt | ratio | decode roofline tok/s (${peer} / llmrt) |${N > 1 ? ` x${N} ${peer} | x${N} llmrt | ratio |` : ""}`);
    console.log(`|---|---|---|---|---|---|---|---|---|${N > 1 ? "---|---|---|" : ""}`);
    for (const r of lines) console.log(r);
  };
  table("llama.cpp", rows);
  if (native) {
    console.log("");
    console.log(`Native llama.cpp (${a.native}: llama-bench pp${P}, and tg${G} at depth ${P} (-d), one repetition a round after its warm-up${N > 1 ? `; llama-batched-bench -kvu for x${N}: random tokens, no sampling, generated tokens over prompt + decode time` : ""}):`);
    table("native", nativeRows);
  }
}

/**
 * Micro-benchmark of the packed int8 / int4 matmul kernels (assembly/qmatmul.ts), 1 thread.
 *
 * 1. Per matrix of the Llama-110M shape (weights warm in cache): decode by integer dots over
 *    blocks of 4 rows with q interleaved by packed.ts (the default, "rows il"), the same on
 *    row-major q ("rows"), a row at a time (the earlier kernel, "row"), by f32 FMA on
 *    dequantized lanes ("float"); T=4; prefill (dequantized row blocks).
 * Times are CPU time of this process (the machine is shared), best of batches.
 * 2. A whole decode step's matmuls (12 layers of qkv, o, gate_up, down, then the LM head,
 *    each matrix its own copy: they stream from DRAM as in a real step): ms per token and
 *    weight GB/s, kernels alternating, best of rounds; int4 g32 also in the lanes layout
 *    (packed.ts, the relaxed build's default for it: "rows lanes"). --shape tinyllama-1.1b
 *    takes that model's matrices (22 layers) instead.
 *
 *   node --import tsx bench/cpu-packed-kernels.ts [--skip-shapes] [--rounds 6] [--formats 0,1,2,3]
 */
import { parseArgs } from "node:util";
import { placePacked } from "../src/backends/cpu/packed.js";
import { OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import { quantize } from "../src/quant/quantize.js";
import type { PackedDType, PackedLayout } from "../src/quant/packed.js";

const { values: a } = parseArgs({ options: { "skip-shapes": { type: "boolean", default: false }, rounds: { type: "string", default: "6" }, formats: { type: "string" }, shape: { type: "string", default: "llama-110m" } } });
const tiny = a.shape === "tinyllama-1.1b";
if (!tiny && a.shape !== "llama-110m") throw new Error("cpu-packed-kernels: --shape is llama-110m or tinyllama-1.1b");
const rt = new CpuRuntime({ threads: 1, reserveBytes: (tiny ? 2200 : 360) * 2 ** 20, scratchBytes: 260 << 10 });
const main = rt.pool.main as unknown as { packedKernel(mode: number, prefillT: number): void };
const shapes: [K: number, N: number][] = [[768, 2304], [768, 768], [768, 4096], [2048, 768], [768, 32000]];
const allFormats: [string, PackedDType, (K: number) => PackedLayout][] = [
  ["int8 per-channel", "int8", (K) => ({ groupSize: K, asym: false, scale: "f32" })],
  ["Q8_0 (int8 g32)", "int8", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["Q4_0 (int4 g32)", "int4", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["int4 g32 asym", "int4", () => ({ groupSize: 32, asym: true, scale: "f32" })],
  ["int4 g128 asym", "int4", () => ({ groupSize: 128, asym: true, scale: "f32" })],
  ["int4 g128 (int4-wo's default)", "int4", () => ({ groupSize: 128, asym: false, scale: "f32" })],
];
/** --formats 0,2: the formats above by index */
const formats = a.formats ? a.formats.split(",").map((i) => allFormats[Number(i)]) : allFormats;
/** label, packedKernel mode, q interleaved (packed.ts) */
const MODES = [["rows il", 0, true], ["rows", 0, false], ["row", 2, false], ["float", 1, false]] as const;
/** CPU time (ms) of this process: on a loaded machine, unlike wall time, not counting the time other processes hold the core (the runtime has 1 thread: the kernels run on this one). */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

if (!a["skip-shapes"]) {
  for (const [name, dtype, layout] of formats) {
    for (const [K, N] of shapes.filter(([, N]) => N !== 768 && N !== 32000)) {
      const w = quantize(rand(N * K), N, K, dtype, layout(K));
      const mark = rt.heap.mark();
      const placed = [placePacked(rt.heap, "w", w), placePacked(rt.heap, "w", w, { interleave: false })];
      const { bytes } = placed[0];
      const T = 64;
      const x = rt.heap.alloc(T * K * 4);
      rt.heap.f32(x, T * K).set(rand(T * K));
      const out = rt.heap.alloc(T * N * 4);
      // best of short batches: other processes on the machine only ever slow a batch down
      const time = (t: number, reps: number, il: boolean) => {
        const { ptr, slot } = placed[il ? 0 : 1];
        rt.program.reset().emit(OP.MATMUL_Q, out, x, ptr, slot.scales, slot.zeros, slot.code, slot.groupSize, 0, t, K, N);
        rt.run();
        let best = Infinity;
        for (let b = 0; b < 10; b++) {
          const t0 = cpuMs();
          for (let i = 0; i < reps; i++) rt.run();
          best = Math.min(best, (cpuMs() - t0) / 1000 / reps);
        }
        return best;
      };
      const res: string[] = [];
      const runs: [string, number, boolean, number, number][] = [...MODES.map(([l, m, il]) => [l, m, il, 1, 20] as [string, number, boolean, number, number]), ["rows il T=4", 0, true, 4, 5], ["row T=4", 2, false, 4, 5], ["prefill il T=64", 0, true, 64, 1], ["prefill T=64", 0, false, 64, 1]];
      for (const [label, mode, il, t, reps] of runs) {
        main.packedKernel(mode, 16);
        const s = time(t, reps, il);
        res.push(`${label} ${((t * N * K) / s / 1e9).toFixed(1)}`);
      }
      main.packedKernel(0, 16);
      console.log(`${name} K=${K} N=${N} (GMAC/s; ${(bytes / 1e6).toFixed(1)} MB): ${res.join(", ")}`);
      rt.heap.release(mark);
    }
  }
}

// a decode step's matmuls, every matrix its own copy in the heap
const layers = tiny ? 22 : 12;
const step: [K: number, N: number, copies: number][] = tiny
  ? [[2048, 2560, layers], [2048, 2048, layers], [2048, 11264, layers], [5632, 2048, layers], [2048, 32000, 1]]
  : [[768, 2304, layers], [768, 768, layers], [768, 4096, layers], [2048, 768, layers], [768, 32000, 1]];
/** Step modes: label, packedKernel mode, placement (lanes: int4 g32 on the relaxed build only). */
const STEP_RUNS: [string, number, "il" | "rm" | "lanes"][] = [["rows il", 0, "il"], ...(tiny ? [] : ([["rows", 0, "rm"], ["row", 2, "rm"]] as [string, number, "rm"][])), ["rows lanes", 0, "lanes"]];
// without --formats, the first four (the shapes above take them all)
for (const [name, dtype, layout] of a.formats ? formats : formats.slice(0, 4)) {
  const mark = rt.heap.mark();
  const maxK = Math.max(...step.map(([K]) => K));
  const x = rt.heap.alloc(maxK * 4);
  rt.heap.f32(x, maxK).set(rand(maxK));
  const out = rt.heap.alloc(32000 * 4);
  const lanes = rt.simd === "relaxed" && dtype === "int4" && layout(2048).groupSize % 32 === 0;
  const runs = STEP_RUNS.filter(([, , at]) => at !== "lanes" || lanes);
  const calls = new Map<string, number[][]>(runs.map(([, , at]) => [at, []]));
  let bytes = 0;
  for (const [K, N, copies] of step) {
    const w = quantize(rand(N * K), N, K, dtype, layout(K));
    for (let c = 0; c < copies; c++) {
      for (const [at, list] of calls) {
        const p = placePacked(rt.heap, "w", w, { interleave: at !== "rm", lanes: at === "lanes" });
        list.push([out, x, p.ptr, p.slot.scales, p.slot.zeros, p.slot.code, p.slot.groupSize, 0, 1, K, N]);
        if (at === "il") bytes += p.bytes;
      }
    }
  }
  // layer order as a step runs them
  const order = [...Array(layers).keys()].flatMap((l) => [0, 1, 2, 3].map((m) => l + m * layers)).concat([4 * layers]);
  const best = new Map<string, number[]>();
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const [label, mode, at] of runs) {
      main.packedKernel(mode, 16);
      const p = rt.program.reset();
      for (const i of order) p.emit(OP.MATMUL_Q, ...(calls.get(at)![i] as [number, ...number[]]));
      rt.run();
      // single steps, kernels alternating: the best is the one least disturbed by other load
      for (let i = 0; i < 5; i++) {
        const t0 = cpuMs();
        rt.run();
        best.set(label, [...(best.get(label) ?? []), cpuMs() - t0]);
      }
    }
  }
  main.packedKernel(0, 16);
  const res = [...best].map(([l, ms]) => {
    const m = Math.min(...ms);
    return `${l} ${m.toFixed(2)} ms (${(bytes / m / 1e6).toFixed(1)} GB/s, median ${[...ms].sort((u, v) => u - v)[ms.length >> 1].toFixed(2)})`;
  });
  console.log(`${name} decode step matmuls (${(bytes / 1e6).toFixed(0)} MB): ${res.join("; ")}`);
  rt.heap.release(mark);
}
rt.close();

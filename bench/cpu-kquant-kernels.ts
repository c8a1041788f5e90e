/**
 * Micro-benchmark of the GGUF K-quant kernels (assembly/kquant.ts) beside Q4_0 / Q8_0 (the
 * packed int4 / int8 kernels, assembly/qmatmul.ts), 1 thread: a Llama-110M decode step's
 * matmuls (12 layers of qkv, o, gate_up, down, then the LM head; every matrix its own copy,
 * so they stream from DRAM as in a real step) at T = 1 and 4 tokens, and a prefill of 64
 * tokens through the WASM dequantize-and-tile path (no BLAS). CPU time of this process
 * (the machine is shared), best of rounds, formats alternating.
 *
 *   node --import tsx bench/cpu-kquant-kernels.ts [--rounds 4] [--dtypes q4_k,q5_k,q6_k,q4_0,q8_0]
 */
import { parseArgs } from "node:util";
import { placePacked } from "../src/backends/cpu/packed.js";
import { OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import { isKQuant } from "../src/checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../src/checkpoint/ggml-kquants-write.js";
import { packedFromKQuant } from "../src/quant/kquant.js";
import type { PackedMatrix } from "../src/quant/packed.js";
import { quantize } from "../src/quant/quantize.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({ options: { rounds: { type: "string", default: "4" }, dtypes: { type: "string", default: "q4_k,q5_k,q6_k,q4_0,q8_0" } } });
const rt = new CpuRuntime({ threads: 1, reserveBytes: 400 << 20 });
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

function weight(dtype: string, K: number, N: number): PackedMatrix {
  const v = rand(N * K);
  if (isKQuant(dtype)) return packedFromKQuant(quantizeKQuant(dtype, v), dtype, N, K);
  return quantize(v, N, K, dtype === "q8_0" ? "int8" : "int4", { groupSize: 32, asym: false, scale: "f16" });
}

const layers = 12;
const step: [K: number, N: number, copies: number][] = [[768, 2304, layers], [768, 768, layers], [768, 4096, layers], [2048, 768, layers], [768, 32000, 1]];
const order = [...Array(layers).keys()].flatMap((l) => [0, 1, 2, 3].map((m) => l + m * layers)).concat([4 * layers]);
const dtypes = a.dtypes.split(",");
const x = rt.heap.alloc(64 * 2048 * 4);
rt.heap.f32(x, 64 * 2048).set(rand(64 * 2048));
const out = rt.heap.alloc(64 * 32000 * 4);
const placed = new Map<string, { calls: number[][]; bytes: number }>();
for (const dt of dtypes) {
  const calls: number[][] = [];
  let bytes = 0;
  for (const [K, N, copies] of step) {
    const w = weight(dt, K, N);
    for (let c = 0; c < copies; c++) {
      const p = placePacked(rt.heap, "w", w);
      calls.push([out, x, p.ptr, p.slot.scales, p.slot.zeros, p.slot.code, p.slot.groupSize, 0, 1, K, N]);
      bytes += p.bytes;
    }
  }
  placed.set(dt, { calls, bytes });
}
const best = new Map<string, number>();
const time = (key: string, dt: string, T: number, reps: number) => {
  const p = rt.program.reset();
  // prefill: the first layer's matrices only (the f32 tiles dominate; DRAM matters less)
  const idx = T >= 16 ? [0, 12, 24, 36] : order;
  for (const i of idx) {
    const c = [...placed.get(dt)!.calls[i]];
    c[8] = T;
    p.emit(OP.MATMUL_Q, ...(c as [number, ...number[]]));
  }
  rt.run();
  for (let r = 0; r < reps; r++) {
    const t0 = cpuMs();
    rt.run();
    const ms = cpuMs() - t0;
    best.set(key, Math.min(best.get(key) ?? Infinity, ms));
  }
};
for (let r = 0; r < Number(a.rounds); r++) {
  for (const dt of dtypes) {
    time(`${dt} T=1`, dt, 1, 5);
    time(`${dt} T=4`, dt, 4, 2);
    time(`${dt} T=64`, dt, 64, 1);
  }
}
console.log(`machine: ${machineLine()}`);
console.log("| format | weight MB (as placed) | decode step T=1 ms (GB/s) | T=4 ms | prefill T=64, 1 layer's matmuls, ms (GFLOP/s) |");
console.log("|---|---|---|---|---|");
const layerMacs = 64 * (768 * 2304 + 768 * 768 + 768 * 4096 + 2048 * 768);
for (const dt of dtypes) {
  const { bytes } = placed.get(dt)!;
  const t1 = best.get(`${dt} T=1`)!;
  const t64 = best.get(`${dt} T=64`)!;
  console.log(`| ${dt} | ${(bytes / 1e6).toFixed(1)} | ${t1.toFixed(2)} (${(bytes / t1 / 1e6).toFixed(1)}) | ${best.get(`${dt} T=4`)!.toFixed(2)} | ${t64.toFixed(2)} (${((2 * layerMacs) / t64 / 1e6).toFixed(1)}) |`);
}
rt.close();

/**
 * Micro-benchmark of the packed int8 / int4 matmul kernels (assembly/qmatmul.ts) on the
 * Llama-110M matrix shapes, 1 thread: decode by integer dots against decode by f32 FMA on
 * dequantized lanes, and prefill (dequantized row blocks). Prints GMAC/s and GB/s of weights.
 *
 *   node --import tsx bench/cpu-packed-kernels.ts
 */
import { placePacked } from "../src/backends/cpu/packed.js";
import { OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import { quantize } from "../src/quant/quantize.js";
import type { PackedDType, PackedLayout } from "../src/quant/packed.js";

const rt = new CpuRuntime({ threads: 1, reserveBytes: 64 << 20, scratchBytes: 260 << 10 });
const main = rt.pool.main as unknown as { packedKernel(floatDecode: number, prefillT: number): void };
const shapes: [K: number, N: number][] = [[768, 2304], [768, 4096], [2048, 768], [768, 32000]];
const formats: [string, PackedDType, (K: number) => PackedLayout][] = [
  ["int8 per-channel", "int8", (K) => ({ groupSize: K, asym: false, scale: "f32" })],
  ["Q8_0 (int8 g32)", "int8", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["Q4_0 (int4 g32)", "int4", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["int4 g128 asym", "int4", () => ({ groupSize: 128, asym: true, scale: "f32" })],
];
for (const [name, dtype, layout] of formats) {
  for (const [K, N] of shapes) {
    const w = quantize(Float32Array.from({ length: N * K }, () => Math.random() - 0.5), N, K, dtype, layout(K));
    const mark = rt.heap.mark();
    const { ptr, slot, bytes } = placePacked(rt.heap, "w", w);
    const T = 64;
    const x = rt.heap.alloc(T * K * 4);
    rt.heap.f32(x, T * K).set(Float32Array.from({ length: T * K }, () => Math.random() - 0.5));
    const out = rt.heap.alloc(T * N * 4);
    const time = (t: number, reps: number) => {
      rt.program.reset().emit(OP.MATMUL_Q, out, x, ptr, slot.scales, slot.zeros, slot.code, slot.groupSize, 0, t, K, N);
      rt.run();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) rt.run();
      return (performance.now() - t0) / 1000 / reps;
    };
    const res: string[] = [];
    for (const [label, fl, t, reps] of [["int", 0, 1, 200], ["float", 1, 1, 200], ["int T=4", 0, 4, 50], ["prefill T=64", 0, 64, 10]] as const) {
      main.packedKernel(fl, 16);
      const s = Math.min(time(t, reps), time(t, reps));
      res.push(`${label} ${((t * N * K) / s / 1e9).toFixed(2)} GMAC/s (${(bytes / s / 1e9).toFixed(1)} GB/s)`);
    }
    main.packedKernel(0, 16);
    console.log(`${name} K=${K} N=${N}: ${res.join("; ")}`);
    rt.heap.release(mark);
  }
}
rt.close();

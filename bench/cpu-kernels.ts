/**
 * Micro-benchmarks of the CPU kernels on this machine: memory read bandwidth (the
 * decode roofline's denominator), matvec GB/s (decode, T = 1) and matmul GFLOP/s
 * (prefill, T = 512) for the Llama-110M / TinyLlama-1.1B layer shapes, f32 / bf16 / fp16,
 * 1 and 2 threads. Medians of several runs.
 *
 *   node --import tsx bench/cpu-kernels.ts [--threads 1,2] [--dtypes f32,bf16,f16] [--tokens 1,512]
 *     [--shapes qkv,head] [--simd relaxed|simd] [--json]
 *
 * --shapes keeps the layer shapes whose name contains one of the words; --simd forces a build.
 */
import { parseArgs } from "node:util";
import { packWeight, type WeightDType } from "../src/backends/cpu/layout.js";
import { DTYPE_CODE, OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import type { SimdLevel } from "../src/backends/cpu/wasm-module.js";
import { roundTrip } from "../src/engine/weights.js";

const { values: args } = parseArgs({
  options: {
    threads: { type: "string", default: "1,2" },
    dtypes: { type: "string", default: "f32,bf16,f16" },
    tokens: { type: "string", default: "1,512" },
    shapes: { type: "string" },
    simd: { type: "string" },
    json: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
});
const threadList = args.threads.split(",").map(Number);
const dtypeList = args.dtypes.split(",") as WeightDType[];
const tokenList = args.tokens.split(",").map(Number);
const shapeWords = args.shapes?.split(",");
const simd = args.simd as SimdLevel | undefined;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median seconds of `fn` over `runs` runs after one warm-up. */
function time(fn: () => void, runs: number): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    ts.push((performance.now() - t) / 1000);
  }
  return median(ts);
}

const results: Record<string, number | string>[] = [];
const report = (r: Record<string, number | string>) => {
  results.push(r);
  if (!args.json) console.log(Object.entries(r).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(2) : v}`).join("  "));
};

for (const threads of threadList) {
  const rt = new CpuRuntime({ threads, simd, reserveBytes: 600 << 20 });
  // memory bandwidth: a pure streaming read of 512 MB
  const n = (512 << 20) / 4;
  const buf = rt.heap.alloc(n * 4);
  const sums = rt.heap.alloc(64);
  rt.heap.f32(buf, n).fill(1);
  const s = time(() => {
    rt.program.reset().emit(OP.READ_SUM, sums, buf, n);
    rt.run();
  }, 5);
  report({ kernel: "read", threads, gb_per_s: (n * 4) / s / 1e9 });

  const shapes = (
    args.quick
      ? [["110m ffn_up", 2048, 768]]
      : [["110m qkv", 2304, 768], ["110m ffn_up", 2048, 768], ["110m ffn_down", 768, 2048], ["110m head", 32000, 768], ["1.1b gate_up", 11264, 2048], ["1.1b down", 2048, 5632]]
  ).filter(([name]) => !shapeWords || shapeWords.some((word) => (name as string).includes(word))) as [string, number, number][];
  const x = rt.heap.alloc(512 * 5632 * 4);
  rt.heap.f32(x, 512 * 5632).fill(0.5);
  const mark = rt.heap.mark();
  for (const [name, N, K] of shapes) {
    for (const dtype of dtypeList) {
      rt.heap.release(mark);
      const wv = roundTrip(Float32Array.from({ length: N * K }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5), dtype);
      const p = packWeight(wv, [N, K], dtype);
      const w = rt.heap.alloc(p.bytes.byteLength);
      rt.heap.u8(w, p.bytes.byteLength).set(p.bytes);
      const out = rt.heap.alloc(512 * N * 4);
      for (const T of tokenList) {
        if (T >= 64 && N * K > 16e6) continue; // the head and 1.1B prefill take long; their layers are measured above
        const sec = time(() => {
          rt.program.reset().emit(OP.MATMUL, out, x, w, DTYPE_CODE[dtype], 0, T, K, N);
          rt.run();
        }, T < 16 ? 20 : 3);
        report({ kernel: `matmul ${name}`, dtype, T, threads, ms: sec * 1000, gb_per_s: p.bytes.byteLength / sec / 1e9, gflop_per_s: (2 * T * N * K) / sec / 1e9 });
      }
    }
  }
  rt.close();
}
if (args.json) console.log(JSON.stringify({ simd: new CpuRuntime({ threads: 1, simd }).simd, results }));

/**
 * Where the CPU backend should hand a matmul to the system BLAS: the WASM kernel and
 * the BLAS path (blas-matmul.ts, 16-bit weights widened a block at a time) side by side
 * on the Llama-110M layer shapes, per dtype, row count T and thread count; GFLOP/s
 * (medians) and the ratio. The crossovers give BlasMatmul's minRows / minRows16.
 *
 *   node --import tsx bench/cpu-blas.ts [--threads 1,2] [--rows 1,2,4,8,16,32,64,512] [--dtypes f32,bf16,f16]
 *
 * OpenBLAS reads OPENBLAS_CORETYPE: unset it to let it pick the CPU's best kernels.
 */
import { parseArgs } from "node:util";
import { systemBlas } from "../src/backends/cpu/blas.js";
import { BlasMatmul } from "../src/backends/cpu/blas-matmul.js";
import { packWeight, type WeightDType } from "../src/backends/cpu/layout.js";
import { DTYPE_CODE, OP } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import type { WeightSlot } from "../src/backends/cpu/tensors.js";
import { machineLine } from "../src/cli/machine.js";
import { roundTrip } from "../src/engine/weights.js";
import { median } from "../src/eval/latency.js";

const { values: args } = parseArgs({
  options: {
    threads: { type: "string", default: "1,2" },
    rows: { type: "string", default: "1,2,4,8,12,16,32,64,512" },
    dtypes: { type: "string", default: "f32,bf16,f16" },
  },
});
const list = (s: string) => s.split(",").map((v) => v.trim());
const blas = systemBlas();
if (!blas) throw new Error("no BLAS found (LLMRT_BLAS, or install OpenBLAS)");
console.log(`# node --import tsx bench/cpu-blas.ts ${process.argv.slice(2).join(" ")}`);
console.log(`# ${machineLine()}; ${blas.description}; OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? "(unset)"}; ${new Date().toISOString()}`);

/** Seconds per call: median of runs inside a ~0.3 s budget, after one warm-up. */
function time(fn: () => void): number {
  fn();
  const ts: number[] = [];
  const until = performance.now() + 300;
  while (ts.length < 3 || (performance.now() < until && ts.length < 50)) {
    const t = performance.now();
    fn();
    ts.push((performance.now() - t) / 1000);
  }
  return median(ts);
}

// Llama-110M: qkv [2304, 768], o [768, 768], gate/up [4096, 768], down [768, 2048]
const SHAPES: [string, number, number][] = [["qkv", 2304, 768], ["down", 768, 2048], ["gate_up", 4096, 768]];
console.log("| dtype | threads | shape | T | wasm GFLOP/s | blas GFLOP/s | blas / wasm |");
console.log("|---|---|---|---|---|---|---|");
for (const threads of list(args.threads).map(Number)) {
  const rt = new CpuRuntime({ threads, reserveBytes: 64 << 20, scratchBytes: 256 << 10 });
  for (const dtype of list(args.dtypes) as WeightDType[]) {
    for (const [name, N, K] of SHAPES) {
      const mark = rt.heap.mark();
      const p = packWeight(roundTrip(new Float32Array(N * K).map((_, i) => Math.sin(i) * 0.05), dtype), [N, K], dtype);
      const w: WeightSlot = { ptr: rt.heap.alloc(p.bytes.byteLength), dtype, shape: [N, K], bytes: p.bytes.byteLength };
      rt.heap.u8(w.ptr, p.bytes.byteLength).set(p.bytes);
      const mm = new BlasMatmul(blas, rt, [w], { minRows: 1, minRows16: 1 });
      const maxT = Math.max(...list(args.rows).map(Number));
      const x = rt.heap.alloc(maxT * K * 4);
      const out = rt.heap.alloc(maxT * N * 4);
      rt.heap.f32(x, maxT * K).fill(0.25);
      for (const T of list(args.rows).map(Number)) {
        const wasm = time(() => {
          rt.program.reset().emit(OP.MATMUL, out, x, w.ptr, DTYPE_CODE[dtype], 0, T, K, N);
          rt.run(threads);
        });
        const viaBlas = time(() => mm.run(w, rt.heap.f32(x, T * K), rt.heap.f32(out, T * N), undefined, T, threads));
        const gf = (s: number) => (2 * T * N * K) / s / 1e9;
        console.log(`| ${dtype} | ${threads} | ${name} [${N}, ${K}] | ${T} | ${gf(wasm).toFixed(1)} | ${gf(viaBlas).toFixed(1)} | ${(wasm / viaBlas).toFixed(2)} |`);
      }
      rt.heap.release(mark);
    }
  }
  rt.close();
}

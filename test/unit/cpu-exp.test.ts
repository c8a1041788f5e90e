/**
 * The CPU kernels' vector exp (src/backends/cpu/assembly/exp.ts), compiled on its own with
 * a probe that runs it over an array: within 2 ulp of the correctly rounded e^x across the
 * range softmax feeds it ([-87, 0]), 0 below -87 and at -Infinity, both SIMD builds.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import v8 from "node:v8";
import { wasm } from "../../src/backends/cpu/wasm-api.js";

const dir = join(import.meta.dirname, "../../src/backends/cpu/assembly");
const PROBE = `import { expv } from "./exp";
export function run(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 4) v128.store(dst + (<usize>i << 2), expv(v128.load(src + (<usize>i << 2))));
}
`;

async function probe(features: string): Promise<Record<string, unknown>> {
  const { default: asc } = await import("assemblyscript/asc");
  const sources = { "probe.ts": PROBE, "exp.ts": readFileSync(join(dir, "exp.ts"), "utf8"), "simd.ts": readFileSync(join(dir, "simd.ts"), "utf8") };
  const { binary, stderr } = await asc.compileString(sources, { optimizeLevel: 3, noAssert: true, runtime: "stub", initialMemory: 80, enable: features.split(",") } as never);
  assert.ok(binary, `asc: ${stderr.toString()}`);
  return new wasm.Instance(new wasm.Module(binary), { env: { abort() {} } }).exports;
}

/** Units in the last place of float32 at x (x > 0). */
function ulp(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] += 1;
  return f[0] - Math.fround(x);
}

for (const features of ["simd", "simd,relaxed-simd"]) {
  test(`vector exp within 2 ulp on [-87, 0] (${features})`, async () => {
    if (features.includes("relaxed")) v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
    const exports = await probe(features);
    const memory = exports.memory as { buffer: ArrayBuffer };
    const run = exports.run as (src: number, dst: number, n: number) => void;
    const n = 1 << 18;
    const [srcAt, dstAt] = [65536, 65536 + n * 4];
    const src = new Float32Array(memory.buffer, srcAt, n);
    const dst = new Float32Array(memory.buffer, dstAt, n);
    let worst = 0;
    let at = 0;
    for (let pass = 0; pass < 4; pass++) {
      for (let i = 0; i < n; i++) src[i] = -87 * ((i * 4 + pass) / (4 * n)); // ~1M points, 0 included
      run(srcAt, dstAt, n);
      for (let i = 0; i < n; i++) {
        const want = Math.exp(src[i]);
        const err = Math.abs(dst[i] - want) / ulp(want);
        if (err > worst) [worst, at] = [err, src[i]];
      }
    }
    assert.ok(worst <= 2, `worst error ${worst.toFixed(3)} ulp at x = ${at}`);
    src.set([-Infinity, -87.5, -1000, 0]);
    run(srcAt, dstAt, 4);
    assert.deepEqual(Array.from(dst.subarray(0, 4)), [0, 0, 0, 1]);
  });
}

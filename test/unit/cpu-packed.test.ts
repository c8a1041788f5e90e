/**
 * The CPU backend's packed int8 / int4 matmul (assembly/qmatmul.ts) against the reference
 * packed matmul (src/quant/matmul.ts) on seeded random inputs: rows 1, 7, 33, 4095, columns
 * that are not a multiple of the group (ragged last groups, odd int4 rows), int4 symmetric
 * and asymmetric, groups 32 / 64 / 128 and per channel, f16 scales as GGUF Q8_0 / Q4_0 store
 * them, and the real Q8_0 / Q4_0 block readers; decode (integer dots), prefill (dequantized
 * row blocks) and groups that do not nest in the kernel's chunks. Decode runs on q as
 * packed.ts places it (4-row interleaved where the row-block kernel reads the groups) and
 * row-major, by the row-block kernel and the earlier row-at-a-time one, in the relaxed and
 * the plain SIMD128 builds.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as k from "../../src/backends/cpu/kernels.js";
import { placePacked, takesLanes } from "../../src/backends/cpu/packed.js";
import { OP } from "../../src/backends/cpu/program.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { quantizeQ4_0, quantizeQ8_0 } from "../../src/checkpoint/ggml-quants.js";
import { packedFromQ4_0, packedFromQ8_0 } from "../../src/quant/ggml.js";
import { matmulPacked } from "../../src/quant/matmul.js";
import { dequantize, type PackedDType, type PackedLayout, type PackedMatrix } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";
import { assertWithinDecodeBound, randomF32 } from "./cpu-util.js";

const rt2 = new CpuRuntime({ threads: 2, spin: 2000 });
const rt1 = new CpuRuntime({ threads: 1 });
const plain1 = new CpuRuntime({ threads: 1, simd: "simd" });
after(() => (rt2.close(), rt1.close(), plain1.close()));

/** The packed matmul with q placed interleaved (never in lanes) or row-major, decode by kernel `mode` (qmatmul.ts packedKernel: 0 row blocks, 2 a row at a time). */
function matmulPackedVia(rt: CpuRuntime, x: Float32Array, w: PackedMatrix, bias: Float32Array | undefined, T: number, interleave: boolean, mode: number): Float32Array {
  const { rows: N, cols: K } = w;
  const main = rt.pool.main as unknown as { packedKernel(mode: number, prefillT: number): void };
  const mark = rt.heap.mark();
  try {
    const put = (a: Float32Array) => {
      const p = rt.heap.alloc(a.byteLength + 16);
      rt.heap.f32(p, a.length).set(a);
      return p;
    };
    const out = rt.heap.alloc(T * N * 4 + 16);
    const { ptr, slot } = placePacked(rt.heap, "w", w, { interleave });
    main.packedKernel(mode, 16);
    rt.program.reset().emit(OP.MATMUL_Q, out, put(x), ptr, slot.scales, slot.zeros, slot.code, slot.groupSize, bias ? put(bias) : 0, T, K, N);
    rt.run();
    return rt.heap.f32(out, T * N).slice();
  } finally {
    main.packedKernel(0, 16);
    rt.heap.release(mark);
  }
}

/** The rounding bound of cpu-util.ts (int16 activations, or int8 per 32 columns: `int8Chunks`), for w as packed. */
function assertWithinBound(got: Float32Array, want: Float32Array, x: Float32Array, w: PackedMatrix, T: number, what: string, int8Chunks = false): void {
  assertWithinDecodeBound(got, want, x, dequantize(w), T, w.rows, w.cols, what, int8Chunks ? 32 : undefined);
}

function check(w: PackedMatrix, T: number, seed: number, threads: CpuRuntime[] = [rt2]): void {
  const { rows: N, cols: K } = w;
  const x = randomF32(T * K, seed, 2);
  const bias = N % 2 ? randomF32(N, seed + 1) : undefined;
  const want = new Float32Array(T * N);
  matmulPacked(want, x, w, bias, T, K, N);
  // the relaxed build's int4 decode with 8-bit activations per 32 columns (qmatmul8.ts): the
  // lanes layout (groups of a multiple of 32, as packed.ts places it there), the interleaved one (g32)
  const relaxedDecode = (rt: CpuRuntime) => rt.simd === "relaxed" && T < 16;
  const int8Lanes = (rt: CpuRuntime) => relaxedDecode(rt) && takesLanes(w);
  const int8Il = (rt: CpuRuntime) => relaxedDecode(rt) && w.dtype === "int4" && w.layout.groupSize === 32;
  for (const rt of threads) assertWithinBound(k.matmulPacked(rt, x, w, bias, T), want, x, w, T, `${rt.threads} thread(s)`, int8Lanes(rt));
  assertWithinBound(matmulPackedVia(rt1, x, w, bias, T, true, 0), want, x, w, T, "interleaved, row blocks", int8Il(rt1));
  // the plain SIMD128 build; q row-major through the row-block and the row-at-a-time kernels
  assertWithinBound(k.matmulPacked(plain1, x, w, bias, T), want, x, w, T, "plain SIMD");
  assertWithinBound(matmulPackedVia(rt1, x, w, bias, T, false, 0), want, x, w, T, "row-major, row blocks");
  assertWithinBound(matmulPackedVia(rt1, x, w, bias, T, false, 2), want, x, w, T, "row-major, a row at a time");
}

const formats: [name: string, dtype: PackedDType, layout: (K: number) => PackedLayout][] = [
  ["int8 per channel", "int8", (K) => ({ groupSize: K, asym: false, scale: "f32" })],
  ["int8 g32 f16 (Q8_0-like)", "int8", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["int4 sym g32 f16 (Q4_0-like)", "int4", () => ({ groupSize: 32, asym: false, scale: "f16" })],
  ["int4 sym g64", "int4", () => ({ groupSize: 64, asym: false, scale: "f32" })],
  ["int4 asym g128", "int4", () => ({ groupSize: 128, asym: true, scale: "f32" })],
  ["int4 asym g32", "int4", () => ({ groupSize: 32, asym: true, scale: "f32" })],
  ["int4 asym per channel", "int4", (K) => ({ groupSize: K, asym: true, scale: "f32" })],
  ["int8 g128", "int8", () => ({ groupSize: 128, asym: false, scale: "f32" })],
  ["int8 g96", "int8", () => ({ groupSize: 96, asym: false, scale: "f32" })],
  ["int8 g24 (groups off the 16-column chunks)", "int8", () => ({ groupSize: 24, asym: false, scale: "f32" })],
];

const cases: [T: number, K: number, N: number][] = [
  [1, 64, 1],
  [1, 33, 4],
  [3, 4095, 5],
  [1, 5000, 13], // one token over long rows (several i32 segments a row)
  [1, 37, 7],
  [7, 100, 33],
  [33, 200, 9],
  [2, 300, 4095],
  [1, 768, 257],
  [16, 96, 130],
];

describe("cpu packed matmul vs the reference", () => {
  for (const [name, dtype, layout] of formats) {
    for (const [T, K, N] of cases) {
      test(`${name} T=${T} K=${K} N=${N}`, () => {
        const w = quantize(randomF32(N * K, N * 31 + K, 0.5), N, K, dtype, layout(K));
        check(w, T, T * 1000 + K, N === 4095 ? [rt2, rt1] : [rt2]);
      });
    }
  }

  for (const [T, N] of [[1, 33], [5, 7], [40, 65]]) {
    test(`GGUF Q8_0 / Q4_0 blocks T=${T} N=${N} K=96`, () => {
      const v = randomF32(N * 96, N, 0.5);
      check(packedFromQ8_0(quantizeQ8_0(v), N, 96), T, T + 5);
      check(packedFromQ4_0(quantizeQ4_0(v), N, 96), T, T + 6);
    });
  }

  test("int4 g32 decode with 8-bit activations is exact on integer inputs (relaxed dot: nibbles as the unsigned operand, 16-bit pair sums)", (t) => {
    if (rt1.simd !== "relaxed") return t.skip("this runtime has no relaxed SIMD (the 8-bit path is the relaxed build's)");
    // scales 1 and x of integers with a +-127 in every 32 columns: the activation scale is 1, every sum an exact integer
    for (const [N, K] of [[9, 96], [5, 200], [33, 4095]]) {
      const rand = (i: number) => ((i * 2654435761) >>> 0) / 2 ** 32;
      const w: PackedMatrix = { dtype: "int4", layout: { groupSize: 32, asym: false, scale: "f32" }, rows: N, cols: K, q: Uint8Array.from({ length: N * Math.ceil(K / 2) }, (_, i) => Math.floor(rand(i + 7) * 256)), scales: new Float32Array(N * Math.ceil(K / 32)).fill(1), zeros: null };
      const x = Float32Array.from({ length: K }, (_, k) => (k % 32 === 5 || k === K - 1 ? (k % 64 === 5 ? -127 : 127) : Math.round((rand(k + 99) * 2 - 1) * 127)));
      const want = new Float32Array(N);
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const b = w.q[n * Math.ceil(K / 2) + (k >> 1)];
          s += x[k] * ((k & 1 ? b >> 4 : b & 15) - 8);
        }
        want[n] = s;
      }
      for (const rt of [rt1, rt2]) assert.deepEqual(k.matmulPacked(rt, x, w, undefined, 1), want, `${rt.threads} thread(s), [${N}, ${K}]`);
    }
  });

  test("int4 in the lanes layout dequantizes to the reference's values (rows from any offset, ragged K, groups 32 / 64 / 128 / per channel, sym and asym)", () => {
    for (const [asym, G] of [[false, 32], [true, 32], [false, 64], [true, 128], [true, 0]] as const) {
      for (const [N, K] of [[9, 72], [6, 37], [13, 100], [4, 32], [5, 320]]) {
        if (G === 0 && K % 32) continue; // per channel: lanes only where K is a multiple of 32
        const w = quantize(randomF32(N * K, N * 7 + K, 0.5), N, K, "int4", { groupSize: G || K, asym, scale: "f32" });
        const ref = dequantize(w);
        for (const [n0, n1] of [[0, N], [1, N], [3, Math.min(N, 6)], [N - 1, N]]) {
          const got = k.dequantPackedRows(rt1, w, n0, n1);
          assert.deepEqual(got, ref.subarray(n0 * K, n1 * K), `${asym ? "asym" : "sym"} g${G || K} [${N}, ${K}] rows ${n0}..${n1}`);
        }
      }
    }
  });

  test("zero points and scales reach the result (a wrong zero is caught)", () => {
    const w = quantize(randomF32(8 * 64, 3, 0.5), 8, 64, "int4", { groupSize: 32, asym: true, scale: "f32" });
    const x = randomF32(64, 4);
    const good = k.matmulPacked(rt1, x, w, undefined, 1);
    const bad = k.matmulPacked(rt1, x, { ...w, zeros: w.zeros!.map((z) => z ^ 1) }, undefined, 1);
    assert.ok(good.some((v, i) => Math.abs(v - bad[i]) > 1e-3));
  });

  test("w8a8: int8 tokens against per-channel int8 rows equal the reference W8A8 matmul (every token count, interleaved and row-major, both builds, 1 and 2 threads)", () => {
    for (const [N, K] of [[37, 100], [64, 4099], [9, 2176]] as const) {
      const int8 = quantize(randomF32(N * K, N + K, 0.5), N, K, "int8", { groupSize: K, asym: false, scale: "f32" });
      const w: PackedMatrix = { ...int8, dtype: "w8a8" };
      const bias = randomF32(N, 3, 0.1);
      for (const T of [1, 3, 5, 17, 40]) {
        const x = randomF32(T * K, T * 7 + K, 2);
        const want = new Float32Array(T * N);
        matmulPacked(want, x, w, bias, T, K, N);
        const tol = (i: number) => 2e-6 * Math.max(1, Math.abs(want[i]));
        const runs: [string, Float32Array][] = [
          ["2 threads", k.matmulPacked(rt2, x, w, bias, T)],
          ["1 thread", k.matmulPacked(rt1, x, w, bias, T)],
          ["plain SIMD", k.matmulPacked(plain1, x, w, bias, T)],
          ["row-major", matmulPackedVia(rt1, x, w, bias, T, false, 0)],
        ];
        for (const [what, got] of runs) got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tol(i), `${what} [${N}, ${K}] T ${T} at ${i}: ${v} vs ${want[i]}`));
        // int8-wo on the same bytes (int16 tokens) differs: the activations really are int8 here
        const wo = k.matmulPacked(rt1, x, int8, bias, T);
        assert.ok(wo.some((v, i) => Math.abs(v - want[i]) > tol(i)), `[${N}, ${K}] T ${T}: w8a8 ran as int8-wo`);
      }
    }
  });
});

test("placing packed weights: whole-word copies (rows of whole chunks) lay out the bytes that byte copies do; the padding is zeros", () => {
  const cases: [PackedDType, PackedLayout, boolean][] = [
    ["int8", { groupSize: 32, asym: false, scale: "f16" }, false],
    ["int4", { groupSize: 32, asym: false, scale: "f16" }, false],
    ["int4", { groupSize: 32, asym: false, scale: "f16" }, true],
    ["int4", { groupSize: 64, asym: true, scale: "f32" }, true],
  ];
  for (const [dtype, layout, lanes] of cases) {
    for (const N of [5, 8]) {
      const w = quantize(randomF32(N * 64, N, 1), N, 64, dtype, layout);
      const odd = new Uint8Array(w.q.length + 1).subarray(1); // q off a 4-byte boundary: the byte path
      odd.set(w.q);
      const placed = (p: PackedMatrix): Uint8Array => {
        const mark = rt1.heap.mark();
        const { ptr, slot } = placePacked(rt1.heap, "w", p, { lanes });
        const qBytes = Math.ceil(N / 4) * 4 * 2 * (dtype === "int8" ? 32 : 16); // 64 columns: 2 chunks
        const out = rt1.heap.u8(ptr, qBytes).slice();
        assert.equal(slot.code, lanes ? 11 : dtype === "int8" ? 6 : 7);
        rt1.heap.release(mark);
        return out;
      };
      const words = placed(w);
      assert.deepEqual(words, placed({ ...w, q: odd }), `${dtype} g${layout.groupSize} ${lanes ? "lanes" : "interleaved"} N=${N}`);
      // the last block's missing rows (slots r >= N % 4)
      const cb = dtype === "int8" ? 32 : 16;
      const last = words.subarray(Math.floor(N / 4) * 4 * 2 * cb);
      for (let r = N % 4 || 4; r < 4; r++) {
        for (let c = 0; c < 2; c++) {
          const at = lanes ? [0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((b) => c * 64 + 16 * i + 4 * r + b)) : Array.from({ length: cb }, (_, b) => c * 4 * cb + r * cb + b);
          assert.ok(at.every((i) => last[i] === 0), `N=${N}: padding row ${r}, chunk ${c}`);
        }
      }
    }
  }
});

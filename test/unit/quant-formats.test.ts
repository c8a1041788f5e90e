/**
 * Packed weight formats (src/quant): quantize/dequantize error bounds on random data with
 * odd sizes and ragged last groups, the stored form round trip, the reference packed
 * matmul against ops.matmul over the dequantized weights, GGUF Q8_0 / Q4_0 blocks
 * mapped onto the same formats without dequantizing, and GGUF K-quant blocks kept whole
 * with their own block-reading matmul.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { matmul } from "../../src/backends/reference/ops.js";
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from "../../src/checkpoint/ggml-quants.js";
import { packedFromQ4_0, packedFromQ8_0 } from "../../src/quant/ggml.js";
import { matmulPacked } from "../../src/quant/matmul.js";
import { KQUANT_DTYPES, dequantizeKQuant } from "../../src/checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../../src/checkpoint/ggml-kquants-write.js";
import { packedFromKQuant } from "../../src/quant/kquant.js";
import { KQUANT_LAYOUT, decodePacked, dequantize, encodePacked, groupsPerRow, type PackedDType, type PackedLayout } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return Float32Array.from({ length: n }, () => next() * (1 + Math.abs(next()) * 3)); // uneven magnitudes
}

const CASES: { dtype: PackedDType; layout: (cols: number) => PackedLayout; name: string; bound: number }[] = [
  // bound: worst |x - deq| as a multiple of the group's step (scale)
  { name: "int8 per-channel", dtype: "int8", layout: (c) => ({ groupSize: c, asym: false, scale: "f32" }), bound: 0.5 },
  { name: "int8 g32 f16 scales", dtype: "int8", layout: () => ({ groupSize: 32, asym: false, scale: "f16" }), bound: 0.51 },
  ...[32, 64, 128].flatMap((g) => [
    { name: `int4 g${g} sym`, dtype: "int4" as const, layout: () => ({ groupSize: g, asym: false, scale: "f32" as const }), bound: 1 }, // the largest positive value may clamp by one step
    { name: `int4 g${g} asym`, dtype: "int4" as const, layout: () => ({ groupSize: g, asym: true, scale: "f32" as const }), bound: 1 },
  ]),
];

for (const c of CASES) {
  test(`${c.name}: round trip within ${c.bound} step of each value, odd sizes, stored form exact`, () => {
    for (const [rows, cols] of [[7, 172], [3, 33], [5, 1], [4, 200]]) {
      const x = rand(rows * cols, rows * 1000 + cols);
      const layout = c.layout(cols);
      const p = quantize(x, rows, cols, c.dtype, layout);
      const d = dequantize(p);
      const G = groupsPerRow(cols, layout.groupSize);
      let sumSq = 0;
      let errSq = 0;
      for (let n = 0; n < rows; n++) {
        for (let k = 0; k < cols; k++) {
          const step = Math.abs(p.scales[n * G + Math.floor(k / layout.groupSize)]);
          const err = Math.abs(x[n * cols + k] - d[n * cols + k]);
          assert.ok(err <= c.bound * step * (1 + 1e-5) + 1e-7, `[${rows}, ${cols}] (${n}, ${k}): error ${err} > ${c.bound} x step ${step}`);
          sumSq += x[n * cols + k] ** 2;
          errSq += err ** 2;
        }
      }
      const rel = Math.sqrt(errSq / sumSq);
      assert.ok(rel < (c.dtype === "int8" ? 0.01 : 0.15), `${c.name} [${rows}, ${cols}]: relative RMS error ${rel}`);
      const back = decodePacked(encodePacked(p), p.dtype, p.layout, [rows, cols]);
      assert.deepEqual(dequantize(back), d);
    }
  });

  test(`${c.name}: packed matmul equals matmul over the dequantized weights`, () => {
    const [T, K, N] = [5, 172, 9];
    const x = rand(T * K, 7);
    const w = quantize(rand(N * K, 11), N, K, c.dtype, c.layout(K));
    const bias = rand(N, 13);
    const got = new Float32Array(T * N);
    const want = new Float32Array(T * N);
    matmulPacked(got, x, w, bias, T, K, N);
    matmul(want, x, dequantize(w), bias, T, K, N);
    assert.deepEqual(got, want);
  });
}

test("all-zero groups quantize to zero scales and dequantize to zeros", () => {
  for (const c of CASES) {
    const p = quantize(new Float32Array(2 * 40), 2, 40, c.dtype, c.layout(40));
    assert.ok(dequantize(p).every((v) => v === 0), c.name);
  }
});

test("GGUF Q8_0 / Q4_0 blocks map onto int8 / int4 g32 (f16 scales) with the values ggml dequantizes to", () => {
  const [rows, cols] = [6, 96];
  const x = rand(rows * cols, 3);
  const q8 = quantizeQ8_0(x);
  const q4 = quantizeQ4_0(x);
  const p8 = packedFromQ8_0(q8, rows, cols);
  const p4 = packedFromQ4_0(q4, rows, cols);
  assert.deepEqual(dequantize(p8), dequantizeQ8_0(q8, new Float32Array(rows * cols)));
  assert.deepEqual(dequantize(p4), dequantizeQ4_0(q4, new Float32Array(rows * cols)));
  for (const p of [p8, p4]) assert.deepEqual(dequantize(decodePacked(encodePacked(p), p.dtype, p.layout, [rows, cols])), dequantize(p));
  // our int4 sym quantizer is Q4_0's rule: same integers on data whose scales are exact in f16
  const ours = quantize(x, rows, cols, "int4", { groupSize: 32, asym: false, scale: "f16" });
  const diff = dequantize(ours).reduce((m, v, i) => Math.max(m, Math.abs(v - dequantize(p4)[i])), 0);
  assert.ok(diff <= 0.05, `int4 g32 vs Q4_0: ${diff}`);
});

test("GGUF Q8_0 / Q4_0 blocks map the same from any byte offset of the file (16-bit copies where it is even, bytes where not)", () => {
  const [rows, cols] = [5, 64];
  const x = rand(rows * cols, 4);
  for (const [raw, from] of [[quantizeQ8_0(x), packedFromQ8_0], [quantizeQ4_0(x), packedFromQ4_0]] as const) {
    const odd = new Uint8Array(raw.length + 1).subarray(1);
    odd.set(raw);
    assert.deepEqual(from(odd, rows, cols), from(raw, rows, cols));
  }
});

for (const dtype of KQUANT_DTYPES) {
  test(`GGUF ${dtype.toUpperCase()} kept packed: stored form exact, values as the GGUF reading, block matmul = matmul over dequantized (odd T, N)`, () => {
    for (const [T, K, N] of [[5, 768, 7], [1, 256, 3], [3, 512, 1]]) {
      const values = rand(N * K, K + N);
      const blocks = quantizeKQuant(dtype, values);
      const w = packedFromKQuant(blocks, dtype, N, K);
      assert.deepEqual(dequantize(w), dequantizeKQuant(dtype, blocks, new Float32Array(N * K)));
      assert.deepEqual(quantize(values, N, K, dtype, KQUANT_LAYOUT), w, "quantize() makes the writer's blocks");
      const stored = encodePacked(w);
      assert.equal(stored.length, blocks.length, "the stored form is the blocks alone");
      assert.deepEqual(decodePacked(stored, dtype, w.layout, [N, K]), w);

      const x = rand(T * K, 7 + T);
      const bias = rand(N, 13);
      const got = new Float32Array(T * N);
      const want = new Float32Array(T * N);
      matmulPacked(got, x, w, bias, T, K, N);
      matmul(want, x, dequantize(w), bias, T, K, N);
      const deq = dequantize(w);
      for (let t = 0; t < T; t++) {
        for (let n = 0; n < N; n++) {
          // the block kernel sums q * x per sub-block before scaling: only rounding differs
          let mag = Math.abs(bias[n]);
          for (let k = 0; k < K; k++) mag += Math.abs(x[t * K + k] * deq[n * K + k]);
          const i = t * N + n;
          assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * mag, `[${T}, ${K}, ${N}] (${t}, ${n}): ${got[i]} vs ${want[i]}`);
        }
      }
    }
  });
}

test("K-quant packed matrices reject columns that are not whole super-blocks and blocks of the wrong size", () => {
  assert.throws(() => packedFromKQuant(new Uint8Array(144), "q4_k", 1, 128), /columns a multiple of 256/);
  assert.throws(() => packedFromKQuant(new Uint8Array(143), "q4_k", 1, 256), /143 bytes, want 144/);
  assert.throws(() => decodePacked(new Uint8Array(210), "q6_k", KQUANT_LAYOUT, [2, 256]), /210 bytes, want 420/);
});

/**
 * The CPU backend's GGUF K-quant kernels (assembly/kquant.ts over kquant-layout.ts's kernel
 * form) against the reference (src/quant/kquant.ts matmulKQuant, the dequantization of
 * checkpoint/ggml-kquants.ts) on seeded random inputs: Q4_K, Q5_K and Q6_K blocks from the
 * test writer and blocks of random bytes (every 6-bit scale / min, qh bit and negative Q6_K
 * scale), rows 1, 7, 33 and several hundred, columns 256 / 768 / 1280, 1, 3, 15 tokens
 * (integer dots) and 16, 17 (dequantized row blocks), 1 and 2 threads, relaxed and plain
 * SIMD128 builds; the BLAS path's row dequantizer equal to the reference's values bit for
 * bit, and BLAS matmuls over it (when OpenBLAS is there).
 */
import { after, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import * as k from "../../src/backends/cpu/kernels.js";
import { systemBlas } from "../../src/backends/cpu/blas.js";
import { BlasMatmul } from "../../src/backends/cpu/blas-matmul.js";
import { placePacked } from "../../src/backends/cpu/packed.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import type { WeightSlot } from "../../src/backends/cpu/tensors.js";
import { f32ToF16 } from "../../src/checkpoint/fp16.js";
import { KQUANTS, KQUANT_DTYPES, QK_K, type KQuantDType } from "../../src/checkpoint/ggml-kquants.js";
import { quantizeKQuant } from "../../src/checkpoint/ggml-kquants-write.js";
import { matmulKQuant, packedFromKQuant } from "../../src/quant/kquant.js";
import { dequantize, type PackedMatrix } from "../../src/quant/packed.js";
import { assertWithinDecodeBound, randomF32 } from "./cpu-util.js";

const rt2 = new CpuRuntime({ threads: 2, spin: 2000 });
const rt1 = new CpuRuntime({ threads: 1 });
const plain1 = new CpuRuntime({ threads: 1, simd: "simd" });
after(() => (rt2.close(), rt1.close(), plain1.close()));

/** Blocks written by the test writer from uniform values. */
function written(dtype: KQuantDType, N: number, K: number, seed: number): PackedMatrix {
  return packedFromKQuant(quantizeKQuant(dtype, randomF32(N * K, seed, 0.5)), dtype, N, K);
}

/** Blocks of random bytes with small finite f16 d / dmin: every scale, min and high bit pattern. */
function randomBlocks(dtype: KQuantDType, N: number, K: number, seed: number): PackedMatrix {
  const f = KQUANTS[dtype];
  const raw = new Uint8Array(N * (K / QK_K) * f.blockBytes);
  const r = randomF32(raw.length, seed);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.floor((r[i] + 1) * 128) & 0xff;
  const d = randomF32(2 * (raw.length / f.blockBytes), seed + 1, 0.02);
  for (let b = 0, j = 0; b < raw.length; b += f.blockBytes) {
    const put = (o: number, v: number) => {
      const h = f32ToF16(v);
      raw[b + o] = h & 0xff;
      raw[b + o + 1] = h >> 8;
    };
    if (dtype === "q6_k") put(208, d[j++]);
    else (put(0, d[j++]), put(2, Math.abs(d[j++])));
  }
  return packedFromKQuant(raw, dtype, N, K);
}

function check(w: PackedMatrix, T: number, seed: number, runtimes: CpuRuntime[]): void {
  const { rows: N, cols: K } = w;
  const x = randomF32(T * K, seed, 2);
  const bias = N % 2 ? randomF32(N, seed + 1) : undefined;
  const want = new Float32Array(T * N);
  matmulKQuant(want, x, w, bias, T, K, N);
  const wf = dequantize(w);
  // the relaxed build's K-quant decode: 8-bit activations per super-block (kquant.ts matmulDotsR)
  const int8Blocks = (rt: CpuRuntime) => rt.simd === "relaxed" && T < 16;
  for (const rt of runtimes) assertWithinDecodeBound(k.matmulPacked(rt, x, w, bias, T), want, x, wf, T, N, K, `${rt.threads} thread(s)${rt === plain1 ? " plain SIMD" : ""}`, int8Blocks(rt) ? 256 : undefined);
}

test("K-quant decode on 8-bit-exact activations (each 256 columns integers times max / 127) = the reference to f32 rounding (3e-4: the Q6_K offset of 32 comes off as one sum; a wrong scale, min or offset is off by O(1))", (t) => {
  if (rt1.simd !== "relaxed") return t.skip("this runtime has no relaxed SIMD (the 8-bit path is the relaxed build's)");
  for (const dtype of KQUANT_DTYPES) {
    for (const [T, K, N] of [[1, 256, 9], [3, 1280, 33], [2, 768, 4]]) {
      const w = randomBlocks(dtype, N, K, N + K);
      const r = randomF32(T * K, K + 1);
      // per token and 256 columns: scale c, values c * q / 127 with q integer and one q = +-127
      const x = Float32Array.from(r, (v, i) => ((i % 256 === 7 ? (v < 0 ? -127 : 127) : Math.round(v * 127)) * (1 + (i >> 8) * 0.25)) / 127);
      const want = new Float32Array(T * N);
      matmulKQuant(want, x, w, undefined, T, K, N);
      for (const rt of [rt1, rt2]) {
        const got = k.matmulPacked(rt, x, w, undefined, T);
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 3e-4 * (1 + Math.abs(want[i])), `${dtype} T=${T} K=${K} N=${N} ${rt.threads} thread(s): out ${i} = ${got[i]}, want ${want[i]}`);
      }
    }
  }
});

const makers = [
  ["written", written],
  ["random bytes", randomBlocks],
] as const;

const cases: [T: number, K: number, N: number][] = [
  [1, 256, 1],
  [3, 256, 7],
  [15, 768, 33],
  [1, 1280, 301],
  [16, 256, 33],
  [17, 768, 7],
  [2, 512, 260],
];

describe("cpu K-quant matmul vs the reference", () => {
  for (const dtype of KQUANT_DTYPES) {
    for (const [label, make] of makers) {
      for (const [T, K, N] of cases) {
        test(`${dtype} ${label} T=${T} K=${K} N=${N}`, () => {
          const w = make(dtype, N, K, N * 31 + K);
          check(w, T, T * 1000 + K, N > 100 ? [rt2, rt1] : [rt2, rt1, plain1]);
        });
      }
    }
  }
});

test("the BLAS path's row dequantizer gives the reference's values bit for bit (row ranges, 1 and 2 threads)", () => {
  for (const dtype of KQUANT_DTYPES) {
    for (const [label, make] of makers) {
      const w = make(dtype, 37, 768, 7);
      const want = dequantize(w);
      for (const rt of [rt1, rt2]) {
        for (const [n0, n1] of [[0, 37], [5, 6], [3, 36]]) {
          const got = k.dequantPackedRows(rt, w, n0, n1);
          const ref = want.subarray(n0 * 768, n1 * 768);
          for (let i = 0; i < ref.length; i++) if (!Object.is(got[i], ref[i])) assert.fail(`${dtype} ${label} rows [${n0}, ${n1}) ${rt.threads} thread(s): value ${i} is ${got[i]}, want ${ref[i]}`);
        }
      }
    }
  }
});

function blasOrSkip(t: TestContext) {
  const blas = systemBlas({ LLMRT_BLAS: "auto" });
  if (blas) return blas;
  const msg = "no OpenBLAS library found (Debian: apt-get install libopenblas0); the BLAS path is untested here";
  if (process.env.CI === "true") throw new Error(msg);
  t.skip(msg);
  return null;
}

test("BLAS matmul over dequantized K-quant row blocks = the reference (ragged last block, 1 and 2 threads)", (t) => {
  const blas = blasOrSkip(t);
  if (!blas) return;
  let seed = 90;
  for (const dtype of KQUANT_DTYPES) {
    for (const [M, N, K] of [[16, 37, 512], [33, 300, 256]]) {
      for (const threads of [1, 2]) {
        const rt = threads === 1 ? rt1 : rt2;
        const mark = rt.heap.mark();
        try {
          const packed = randomBlocks(dtype, N, K, seed++);
          const placed = placePacked(rt.heap, "w", packed);
          const slot: WeightSlot = { ptr: placed.ptr, dtype, shape: [N, K], bytes: placed.bytes, packed: placed.slot };
          const mm = new BlasMatmul(blas, rt, [slot], { blockBytes: 7 * K * 4, minRowsPacked: 16 });
          assert.ok(mm.takes(slot, M));
          const x = randomF32(M * K, seed++);
          const xp = rt.heap.alloc(M * K * 4);
          const op = rt.heap.alloc(M * N * 4);
          rt.heap.f32(xp, M * K).set(x);
          const bias = randomF32(N, seed++);
          mm.run(slot, rt.heap.f32(xp, M * K), rt.heap.f32(op, M * N), bias, M, threads);
          const want = new Float32Array(M * N);
          matmulKQuant(want, x, packed, bias, M, K, N);
          const got = rt.heap.f32(op, M * N);
          // f32 sgemm over exact values vs the reference's f64 sums per sub-block
          const wf = dequantize(packed);
          assertWithinDecodeBound(got, want, x, wf, M, N, K, `${dtype} BLAS [${M}, ${K}] x [${N}, ${K}]^T ${threads} thread(s)`);
        } finally {
          rt.heap.release(mark);
        }
      }
    }
  }
});

test("a K-quant tensor whose bytes do not match its shape is refused before it is read", () => {
  const w = written("q4_k", 3, 256, 1);
  assert.throws(() => placePacked(rt1.heap, "bad", { ...w, q: w.q.subarray(0, w.q.length - 1) }), /Q4_K \[3, 256\] has 431 bytes, want 432/);
  assert.throws(() => placePacked(rt1.heap, "bad", { ...w, cols: 300 }), RangeError);
});

test("a K-quant matrix too wide for the thread scratch is an error (a trap), not an overrun", () => {
  const rt = new CpuRuntime({ threads: 1, scratchBytes: 4096 }); // a quantized token of 2048 columns needs 4368 bytes
  try {
    assert.throws(() => k.matmulPacked(rt, new Float32Array(2048), written("q4_k", 4, 2048, 3), undefined, 1), /unreachable/);
  } finally {
    rt.close();
  }
});

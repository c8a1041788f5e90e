/**
 * The fp16 matmul paths of the CPU kernels (assembly/matmul.ts, simd.ts), in the relaxed and
 * the plain SIMD128 build: under 8 tokens the activations are scaled by a power of two and
 * each weight decoded by integer ops (DT_F16S); huge or non-finite activations take the
 * unscaled path; 8+ tokens widen row blocks to f32. Every finite fp16 value (subnormals
 * included) must come out exact, and random odd-sized cases must match the reference;
 * the one-token kernel of every dtype too.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as ref from "../../src/backends/reference/ops.js";
import { f16ToF32 } from "../../src/checkpoint/fp16.js";
import { packWeight, type PackedWeight, type WeightDType } from "../../src/backends/cpu/layout.js";
import { roundTrip } from "../../src/engine/weights.js";
import * as k from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { randomF32 } from "./cpu-util.js";

const builds = (["relaxed", "simd"] as const).map((simd) => ({
  simd,
  rt2: new CpuRuntime({ threads: 2, spin: 2000, simd }),
  rt1: new CpuRuntime({ threads: 1, simd }),
}));
after(() => builds.forEach((b) => (b.rt2.close(), b.rt1.close())));

function f16Weight(bits: Uint16Array, N: number, K: number): PackedWeight {
  return { dtype: "f16", shape: [N, K], bytes: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) };
}

/** Random fp16 bits: mostly normal values of magnitude ~scale, `subnormal` of them subnormal, a few near the fp16 maximum. */
function randomF16Bits(n: number, seed: number, subnormal: number): Uint16Array {
  const u = randomF32(n * 3, seed);
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = u[3 * i] < 0 ? 0x8000 : 0;
    const pick = Math.abs(u[3 * i + 1]);
    const m = Math.floor(Math.abs(u[3 * i + 2]) * 1024) & 0x3ff;
    if (pick < subnormal) bits[i] = sign | m; // exponent 0: zero or subnormal
    else if (pick > 0.995) bits[i] = sign | (30 << 10) | m; // up to 65504
    else bits[i] = sign | ((8 + Math.floor(pick * 14)) << 10) | m; // 2^-7 .. 2^7
  }
  return bits;
}

/** Asserts |got - want| <= tol * (sum |x w| + |bias|) per output (the error scale of a float dot product). */
function assertDotClose(got: Float32Array, want: Float32Array, x: Float32Array, w: Float32Array, bias: Float32Array | undefined, T: number, K: number, N: number, tol: number, what: string): void {
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      const i = t * N + n;
      if (!Number.isFinite(want[i])) {
        assert.ok(Object.is(got[i], want[i]), `${what}: out[${t}, ${n}] is ${got[i]}, want ${want[i]}`);
        continue;
      }
      let scale = bias ? Math.abs(bias[n]) : 0;
      for (let c = 0; c < K; c++) scale += Math.abs(x[t * K + c] * w[n * K + c]);
      assert.ok(Math.abs(got[i] - want[i]) <= tol * scale, `${what}: out[${t}, ${n}] is ${got[i]}, want ${want[i]} (error scale ${scale})`);
    }
  }
}

describe("cpu fp16 matmul: every finite fp16 value decodes exactly", () => {
  // row n holds finite pattern n at column n % K, zeros elsewhere: out = value * x exactly
  const K = 43; // 32-column passes, one 8-column block, a 3-column tail
  const patterns = Array.from({ length: 0x10000 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00);
  const N = patterns.length;
  const bits = new Uint16Array(N * K);
  patterns.forEach((h, n) => (bits[n * K + (n % K)] = h));
  const w = f16Weight(bits, N, K);
  const tokenValues = [1, -0.75, 3, 0.5, -1, 2, 1.5, -4];
  for (const { simd, rt2 } of builds) {
    for (const [T, xScale, path] of [[1, 1, "one token"], [3, 1, "3 tokens"], [5, 1, "4-token tile + 1"], [8, 1, "8 tokens (widened)"], [1, 2 ** 61, "|x| >= 2^60 (unscaled)"], [2, 2 ** -100, "tiny x"]] as const) {
      test(`${simd}: ${path}`, () => {
        const x = new Float32Array(T * K);
        for (let t = 0; t < T; t++) x.fill(tokenValues[t] * xScale, t * K, (t + 1) * K);
        const got = k.matmul(rt2, x, w, undefined, T);
        for (let t = 0; t < T; t++) {
          for (let n = 0; n < N; n++) {
            const want = Math.fround(f16ToF32(patterns[n]) * x[t * K]);
            if (got[t * N + n] !== want) assert.fail(`fp16 0x${patterns[n].toString(16)}, token ${t}: got ${got[t * N + n]}, want ${want}`);
          }
        }
      });
    }
  }
});

describe("cpu fp16 matmul = reference on random odd sizes", () => {
  const cases: [T: number, K: number, N: number][] = [
    [1, 1, 1],
    [1, 7, 7],
    [1, 33, 33],
    [1, 771, 4095],
    [1, 4095, 5],
    [2, 63, 33],
    [3, 9, 7],
    [4, 100, 33],
    [5, 2049, 7],
    [7, 41, 130],
    [9, 37, 33],
  ];
  // activation scales: ordinary, tiny (the power-of-two scale is chosen from max|x|), just under
  // and over 2^60 (over: the unscaled path), and rows holding Inf / NaN (unscaled)
  const xScales: [string, number][] = [["x ~ 1", 1], ["x ~ 1e-30", 1e-30], ["x ~ 2^59", 2 ** 59], ["x ~ 2^61", 2 ** 61]];
  for (const { simd, rt2, rt1 } of builds) {
    for (const [T, K, N] of cases) {
      test(`${simd}: T=${T} K=${K} N=${N}`, () => {
        const bits = randomF16Bits(N * K, N * 31 + K, 0.1);
        const w = Float32Array.from(bits, f16ToF32);
        const bias = N % 2 ? randomF32(N, 3) : undefined;
        for (const [what, scale] of xScales) {
          const x = randomF32(T * K, T * 1000 + K, scale);
          const want = new Float32Array(T * N);
          ref.matmul(want, x, w, bias, T, K, N);
          assertDotClose(k.matmul(rt2, x, f16Weight(bits, N, K), bias, T), want, x, w, bias, T, K, N, 1e-5, `${what}, 2 threads`);
          if (N === 4095) assertDotClose(k.matmul(rt1, x, f16Weight(bits, N, K), bias, T), want, x, w, bias, T, K, N, 1e-5, `${what}, 1 thread`);
        }
        for (const bad of [Infinity, -Infinity, NaN]) {
          const x = randomF32(T * K, T + K);
          x[K - 1] = bad; // last column of token 0: a tail element or the last of a block
          const want = new Float32Array(T * N);
          ref.matmul(want, x, w, bias, T, K, N);
          assertDotClose(k.matmul(rt2, x, f16Weight(bits, N, K), bias, T), want, x, w, bias, T, K, N, 1e-5, `x holding ${bad}`);
        }
      });
    }
  }
});

describe("cpu one-token matvec (32 columns / 8 accumulators a pass) = reference, every dtype", () => {
  // K around the pass sizes: under 8, 8-column blocks only, 32-column passes plus blocks and a tail
  const shapes: [K: number, N: number][] = [[1, 3], [7, 7], [8, 1], [31, 33], [32, 5], [40, 9], [777, 33]];
  for (const { simd, rt2 } of builds) {
    for (const dtype of ["f32", "bf16", "f16"] as WeightDType[]) {
      test(`${simd}: ${dtype}`, () => {
        for (const [K, N] of shapes) {
          const x = randomF32(K, K + 5);
          const w = roundTrip(randomF32(N * K, N * K, 0.5), dtype);
          const bias = N % 2 ? randomF32(N, 3) : undefined;
          const want = new Float32Array(N);
          ref.matmul(want, x, w, bias, 1, K, N);
          assertDotClose(k.matmul(rt2, x, packWeight(w, [N, K], dtype), bias, 1), want, x, w, bias, 1, K, N, 1e-6, `K=${K} N=${N}`);
        }
      });
    }
  }
});

test("a matrix with an infinite value is not stored as fp16 (the fp16 decode is exact for finite halves only)", () => {
  const finite = new Float32Array([1 + 2 ** -10, 0.5, -3, 2 ** -20]); // fp16-exact, not bf16-exact
  assert.equal(packWeight(finite, [2, 2]).dtype, "f16");
  for (const bad of [Infinity, -Infinity]) {
    const v = finite.slice();
    v[3] = bad;
    assert.equal(packWeight(v, [2, 2]).dtype, "f32", `with ${bad}`);
  }
});

/**
 * Every CPU kernel against the reference definition of its op, on seeded random inputs
 * with odd sizes (rows 1, 7, 33, 4095; K not a multiple of 8), f32 / bf16 / fp16
 * weights, on 2 threads (shares split unevenly) and on 1.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as ref from "../../src/backends/reference/ops.js";
import { addRmsnorm as refAddRmsnorm, siluMulPacked } from "../../src/backends/reference/fused.js";
import { packWeight, type WeightDType } from "../../src/backends/cpu/layout.js";
import * as k from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { roundTrip } from "../../src/engine/weights.js";
import { assertClose, randomF32 } from "./cpu-util.js";

const rt2 = new CpuRuntime({ threads: 2, spin: 2000 });
const rt1 = new CpuRuntime({ threads: 1 });
after(() => (rt2.close(), rt1.close()));

describe("cpu matmul", () => {
  const cases: [T: number, K: number, N: number][] = [
    [1, 64, 1],
    [1, 37, 7],
    [7, 64, 33],
    [33, 21, 9],
    [4, 100, 4095],
    [1, 768, 257],
    [9, 8, 130],
    [2, 37, 9],
    [3, 203, 17],
    [11, 64, 5],
  ];
  for (const dtype of ["f32", "bf16", "f16"] as WeightDType[]) {
    for (const [T, K, N] of cases) {
      test(`${dtype} T=${T} K=${K} N=${N}`, () => {
        const x = randomF32(T * K, T * 1000 + K);
        const w = roundTrip(randomF32(N * K, N + K * 7, 0.5), dtype);
        const bias = N % 2 ? randomF32(N, 3) : undefined;
        const want = new Float32Array(T * N);
        ref.matmul(want, x, w, bias, T, K, N);
        const packed = packWeight(w, [N, K], dtype);
        assert.equal(packed.dtype, dtype);
        assertClose(k.matmul(rt2, x, packed, bias, T), want, 2e-5, "2 threads");
        if (N === 4095 && T === 4) assertClose(k.matmul(rt1, x, packed, bias, T), want, 2e-5, "1 thread");
      });
    }
  }

  test("packWeight keeps exact narrow dtypes and f32 otherwise", () => {
    const v = randomF32(64, 1);
    assert.equal(packWeight(roundTrip(v, "bf16"), [8, 8]).dtype, "bf16");
    assert.equal(packWeight(roundTrip(v, "f16"), [8, 8]).dtype, "f16");
    assert.equal(packWeight(v, [8, 8]).dtype, "f32");
    assert.equal(packWeight(roundTrip(v, "bf16"), [64]).dtype, "f32");
  });
});

describe("cpu norms and elementwise", () => {
  for (const [rows, cols] of [[1, 64], [7, 33], [33, 8], [4095, 12]]) {
    test(`rmsnorm ${rows}x${cols}, whole rows and groups`, () => {
      const x = randomF32(rows * cols, rows + cols, 3);
      const wt = randomF32(cols, 9);
      const want = new Float32Array(x.length);
      ref.rmsnorm(want, x, wt, 1e-5, cols);
      assertClose(k.rmsnorm(rt2, x, wt, 1e-5, cols), want, 1e-5, "rows");
      if (cols % 4 === 0) {
        const g = cols / 4;
        const wantG = new Float32Array(x.length);
        ref.rmsnorm(wantG, x, wt.subarray(0, g), 1e-6, g);
        assertClose(k.rmsnorm(rt2, x, wt.subarray(0, g), 1e-6, g), wantG, 1e-5, "groups");
      }
    });

    test(`add_rmsnorm ${rows}x${cols}`, () => {
      const a = randomF32(rows * cols, 1, 2);
      const b = randomF32(rows * cols, 2, 2);
      const wt = randomF32(cols, 3);
      const [out, sum] = [new Float32Array(a.length), new Float32Array(a.length)];
      refAddRmsnorm(out, sum, a, b, wt, 1e-5);
      const [gotOut, gotSum] = k.addRmsnorm(rt2, a, b, wt, 1e-5);
      assertClose(gotSum, sum, 0, "sum");
      assertClose(gotOut, out, 1e-5, "out");
    });

    test(`add, mul, silu, silu_mul ${rows}x${cols}`, () => {
      const a = randomF32(rows * cols, 4, 6);
      const b = randomF32(rows * cols, 5, 6);
      for (const [kind, f] of [["add", ref.add], ["mul", ref.mul]] as const) {
        const want = new Float32Array(a.length);
        f(want, a, b);
        assertClose(k.elementwise(rt2, kind, a, b), want, 0, kind);
      }
      const want = new Float32Array(a.length);
      ref.silu(want, a);
      assertClose(k.elementwise(rt2, "silu", a), want, 1e-6, "silu");
      const packed = new Float32Array(2 * a.length);
      packed.set(a);
      packed.set(b, a.length); // [rows', 2I] with I = cols: reinterpret as gate|up rows
      const wantSm = new Float32Array(a.length);
      siluMulPacked(wantSm, packed, cols);
      assertClose(k.siluMul(rt2, packed, cols), wantSm, 1e-6, "silu_mul");
    });
  }

  test("silu and silu_mul at extreme gates: large, tiny, zero, infinite, NaN (vector and scalar-tail lanes)", () => {
    const gates = [-1000, -120, -88.5, -88, -87.5, -30, -1e-30, -0, 0, 1e-30, 0.5, 30, 88, 89, 120, 3e38, -3e38, Infinity, -Infinity, NaN, -5, 7];
    const a = Float32Array.from(gates); // 22 values: five vectors of four, then a tail of two
    const want = new Float32Array(a.length);
    ref.silu(want, a);
    const got = k.elementwise(rt1, "silu", a);
    for (let i = 0; i < a.length; i++) {
      if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `silu(${a[i]}) = ${got[i]}, want NaN`);
      else assert.ok(got[i] === want[i] || Math.abs(got[i] - want[i]) <= 1e-6 * (1 + Math.abs(want[i])), `silu(${a[i]}) = ${got[i]}, want ${want[i]}`);
    }
    const up = Float32Array.from(gates, (_, i) => (i % 3) - 1.5);
    const packed = new Float32Array(2 * a.length);
    packed.set(a);
    packed.set(up, a.length);
    const wantSm = new Float32Array(a.length);
    siluMulPacked(wantSm, packed, a.length);
    const gotSm = k.siluMul(rt1, packed, a.length);
    for (let i = 0; i < a.length; i++) {
      if (Number.isNaN(wantSm[i])) assert.ok(Number.isNaN(gotSm[i]), `silu_mul(${a[i]}) = ${gotSm[i]}, want NaN`);
      else assert.ok(gotSm[i] === wantSm[i] || Math.abs(gotSm[i] - wantSm[i]) <= 1e-6 * (1 + Math.abs(wantSm[i])), `silu_mul(${a[i]}) = ${gotSm[i]}, want ${wantSm[i]}`);
    }
  });
});

describe("cpu sampling helpers", () => {
  test("argmax per row, first index on ties", () => {
    for (const [rows, cols] of [[1, 1], [7, 33], [3, 32000]]) {
      const x = randomF32(rows * cols, cols);
      if (cols > 2) x[5] = x[7] = 9; // a tie in row 0
      const got = k.argmax(rt2, x, cols);
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * cols, (r + 1) * cols);
        assert.equal(got[r], row.indexOf(Math.max(...row)), `row ${r}`);
      }
    }
  });

  test("top-k sorted descending, ties by index", () => {
    const x = randomF32(4095, 8);
    x[10] = x[20] = 5;
    for (const kk of [1, 7, 40]) {
      const { ids, values } = k.topk(rt2, x, kk);
      const order = [...x.keys()].sort((i, j) => x[j] - x[i] || i - j).slice(0, kk);
      assert.deepEqual([...ids], order);
      assert.deepEqual([...values], order.map((i) => x[i]));
    }
  });
});

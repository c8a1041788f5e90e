/**
 * Symmetric int4 as GPTQ now chooses it (issue 7): the signed-max grid puts each group's
 * extreme exactly on code 0 (-8), GPTQ picks each group's step among SYM_INT4_STEPS, and
 * refine.ts's coordinate descent lowers GPTQ's own loss (the identity: its loss before the
 * sweeps is GPTQ's), ends where no single code step lowers it, and keeps the packed format,
 * which the reference and the cpu kernels read alike (codes 0 and 15 included).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as k from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { gptqQuantize, SYM_INT4_STEPS, weightedError } from "../../src/quant/gptq.js";
import { HessianAccumulator } from "../../src/quant/hessian.js";
import { matmulPacked } from "../../src/quant/matmul.js";
import { decodePacked, dequantize, encodePacked, type PackedLayout, type PackedMatrix } from "../../src/quant/packed.js";
import { codeOn, fitSymInt4, quantize, valueOf, type GroupGrid } from "../../src/quant/quantize.js";
import { refineRows } from "../../src/quant/refine.js";
import { assertWithinDecodeBound } from "./cpu-util.js";

const rt = new CpuRuntime({ threads: 1 });
after(() => rt.close());

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1; // U(-1, 1)
}

/** H = 2 X^T X / N of correlated inputs X [N, K] (a random mix of K/4 factors, every 7th channel 5x). */
function hessian(N: number, K: number, seed: number): Float64Array {
  const r = rng(seed);
  const F = Math.max(2, K >> 2);
  const mix = Float32Array.from({ length: F * K }, r);
  const X = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const z = Array.from({ length: F }, r);
    for (let c = 0; c < K; c++) {
      let v = 0.1 * r();
      for (let f = 0; f < F; f++) v += z[f] * mix[f * K + c];
      X[n * K + c] = c % 7 === 2 ? 5 * v : v;
    }
  }
  const acc = new HessianAccumulator(K);
  acc.add(X);
  return acc.hessian();
}

const dampened = (H: Float64Array, K: number, damp: number) => {
  let mean = 0;
  for (let i = 0; i < K; i++) mean += H[i * K + i] / K;
  const Hd = H.slice();
  for (let i = 0; i < K; i++) Hd[i * K + i] += damp * mean;
  return Hd;
};

const SYM32: PackedLayout = { groupSize: 32, asym: false, scale: "f32" };

test("symmetric int4: the group's value of largest magnitude, either sign, dequantizes exactly to itself on code 0 (-8)", () => {
  const x = Float32Array.from([0.25, -1.5, 0.75, 1.25, 3, -0.5, 2.75, -2.25]);
  for (const [k0, k1, extreme] of [[0, 4, -1.5], [4, 8, 3]] as const) {
    const g = fitSymInt4(x, 0, k0, k1, SYM32, 8);
    assert.equal(codeOn(extreme, g), 0);
    assert.equal(valueOf(0, g), extreme);
    // the other values fit inside [-8, 7] steps
    for (let i = k0; i < k1; i++) assert.ok(Math.abs(valueOf(codeOn(x[i], g), g) - x[i]) <= Math.abs(g.scale) / 2 + 1e-7);
  }
  // round-to-nearest stores that grid: every group's extreme round-trips exactly, through encode / decode too
  const back = dequantize(decodePacked(encodePacked(quantize(x, 2, 4, "int4", SYM32)), "int4", SYM32, [2, 4]));
  assert.equal(back[1], -1.5);
  assert.equal(back[4], 3);
  // steps above 8 clip the extreme to -8 steps; 7 leaves the top code unused at the extreme
  const g9 = fitSymInt4(x, 0, 4, 8, SYM32, 9);
  assert.equal(codeOn(3, g9), 0);
  assert.ok(Math.abs(valueOf(0, g9) - (8 / 9) * 3) < 1e-6);
  assert.equal(codeOn(3, fitSymInt4(x, 0, 4, 8, SYM32, 7)), 1);
});

test("refine: the loss before the sweeps is GPTQ's own, the sweeps lower it, and it ends where no single code step or scale fit lowers it", () => {
  const [rows, K] = [6, 72]; // a ragged last group of 8
  const H = hessian(200, K, 2);
  const r = rng(5);
  const W = Float32Array.from({ length: rows * K }, r);
  const plain = gptqQuantize(W, rows, K, H, "int4", SYM32, 0.1, 0);
  const refined = gptqQuantize(W, rows, K, H, "int4", SYM32, 0.1, 50);
  const Hd = dampened(H, K, 0.1);
  const loss = (p: PackedMatrix) => weightedError(W, dequantize(p), rows, K, Hd);
  assert.ok(Math.abs(loss(plain.packed) - plain.loss.gptq) < 1e-9 * plain.loss.gptq, `GPTQ's summed loss ${plain.loss.gptq} vs (w-q)^T Hd (w-q) ${loss(plain.packed)}`);
  assert.equal(refined.loss.gptq, plain.loss.gptq);
  assert.ok(Math.abs(loss(refined.packed) - refined.loss.refined) < 1e-9 * refined.loss.gptq);
  assert.ok(refined.loss.refined < 0.97 * plain.loss.gptq, `refined ${refined.loss.refined} vs gptq ${plain.loss.gptq}`);
  // a local optimum: no code moved by one step lowers its row's loss (50 sweeps converge on this size)
  const G = Math.ceil(K / 32);
  const grids: GroupGrid[] = [];
  const codes = new Int32Array(rows * K);
  const p = refined.packed;
  for (let n = 0; n < rows; n++) for (let g = 0; g < G; g++) grids.push({ scale: p.scales[n * G + g], zero: 8, lo: 0, hi: 15 });
  for (let i = 0; i < rows * K; i++) codes[i] = (p.q[Math.floor(i / K) * (K / 2) + ((i % K) >> 1)] >> ((i % K) & 1 ? 4 : 0)) & 15;
  const base = refineRows(W, Hd, rows, K, 32, grids.slice(), codes.slice(), 0).before;
  assert.ok(Math.abs(base - refined.loss.refined) < 1e-9 * base);
  const again = refineRows(W, Hd, rows, K, 32, grids.slice(), codes.slice(), 1).after; // scale fits, then code steps
  assert.ok(again >= base * (1 - 1e-6), `one more sweep: ${again} vs ${base}`);
  for (let i = 0; i < rows * K; i += 5) {
    for (const step of [-1, 1]) {
      const c = codes.slice();
      c[i] += step;
      if (c[i] < 0 || c[i] > 15) continue;
      const moved = refineRows(W, Hd, rows, K, 32, grids.slice(), c, 0).before;
      assert.ok(moved >= base - 1e-9 * base, `code ${i} ${step > 0 ? "+" : "-"}1 lowers the loss: ${moved} < ${base}`);
    }
  }
});

test("GPTQ symmetric int4 g32: the sweeps lower the layer loss below the pass alone's; the packed result runs alike on the reference and the cpu kernel, codes 0 and 15 included", () => {
  const [rows, K] = [40, 100];
  const H = hessian(300, K, 3);
  const r = rng(9);
  const W = Float32Array.from({ length: rows * K }, () => r() * (1 + 2 * Math.abs(r())));
  const g = gptqQuantize(W, rows, K, H, "int4", SYM32);
  const Hd = dampened(H, K, 0.1);
  const passOnly = gptqQuantize(W, rows, K, H, "int4", SYM32, 0.1, 0);
  const err = (p: PackedMatrix) => weightedError(W, dequantize(p), rows, K, Hd);
  assert.ok(err(g.packed) < err(passOnly.packed), `${err(g.packed)} vs ${err(passOnly.packed)}`);
  assert.ok(SYM_INT4_STEPS[0] === 8 && SYM_INT4_STEPS.length > 1);
  const used = new Set<number>();
  for (const b of g.packed.q) used.add(b & 15).add(b >> 4);
  assert.ok(used.has(0) && used.has(15), `codes used: ${[...used].sort((a, b) => a - b)}`);
  for (const T of [1, 5]) {
    const x = Float32Array.from({ length: T * K }, r);
    const want = new Float32Array(T * rows);
    matmulPacked(want, x, g.packed, undefined, T, K, rows);
    const got = k.matmulPacked(rt, x, g.packed, undefined, T);
    // the kernel's rounding: 8-bit activations per 32 columns on the relaxed build, int16 on the plain one (cpu-util.ts)
    assertWithinDecodeBound(got, want, x, dequantize(g.packed), T, rows, K, `T ${T}`, rt.simd === "relaxed" ? 32 : undefined);
  }
});

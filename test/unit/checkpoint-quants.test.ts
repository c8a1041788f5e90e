import assert from "node:assert/strict";
import { test } from "node:test";
import { f16ToF32 } from "../../src/checkpoint/fp16.js";
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from "../../src/checkpoint/ggml-quants.js";
import { seeded } from "./checkpoint-util.js";

test("Q8_0 block layout: f16 d = amax/127, then round(x/d) as int8", () => {
  const x = new Float32Array(32).map((_, j) => j - 16); // amax 16
  const b = quantizeQ8_0(x);
  assert.equal(b.length, 34);
  const d = f16ToF32(b[0] | (b[1] << 8));
  assert.ok(Math.abs(d - 16 / 127) < 1e-4);
  const qs = new Int8Array(b.buffer, 2, 32);
  assert.equal(qs[0], -127);
  assert.equal(qs[16], 0);
  assert.equal(qs[17], Math.round(127 / 16));
  const y = dequantizeQ8_0(b, new Float32Array(32));
  for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[j] - x[j]) <= d / 2 + 1e-6);
});

test("Q4_0 decodes low nibbles to the first 16 values and high nibbles to the last 16", () => {
  const b = new Uint8Array(18);
  b[0] = 0x00; // d = 1.0 (f16 0x3c00)
  b[1] = 0x3c;
  for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4);
  const y = dequantizeQ4_0(b, new Float32Array(32));
  for (let j = 0; j < 16; j++) {
    assert.equal(y[j], j - 8);
    assert.equal(y[j + 16], 7 - j);
  }
});

test("Q4_0 maps the largest-magnitude value to -8 and stays within d/2", () => {
  const x = seeded(64, 7);
  x[5] = -3; // largest magnitude, negative
  x[40] = 2.5; // largest in block 2, positive
  const b = quantizeQ4_0(x);
  assert.equal(b.length, 36);
  const y = dequantizeQ4_0(b, new Float32Array(64));
  assert.equal(b[2 + 5] & 0xf, 0); // -8 + 8
  assert.equal(b[18 + 2 + 8] & 0xf, 0); // x[40] is block 1, j = 8: a low nibble
  for (let blk = 0; blk < 2; blk++) {
    const d = Math.abs(f16ToF32(b[blk * 18] | (b[blk * 18 + 1] << 8)));
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[blk * 32 + j] - x[blk * 32 + j]) <= d / 2 + 1e-3 * d + 1e-6);
  }
});

test("all-zero blocks quantize to zeros", () => {
  const z = new Float32Array(32);
  // ggml gives Q4_0 d = -0 here (0 / -8), so compare by value, not by sign of zero
  assert.ok(dequantizeQ8_0(quantizeQ8_0(z), new Float32Array(32)).every((v) => v === 0));
  assert.ok(dequantizeQ4_0(quantizeQ4_0(z), new Float32Array(32)).every((v) => v === 0));
});

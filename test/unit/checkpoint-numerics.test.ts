/** Number formats and layout transforms: f16/bf16, GGML blocks, RoPE permutations and llama3 factors. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { bf16ToF32, f16ArrayToF32, f16ToF32, f32ArrayToF16, f32ToBf16, f32ToF16 } from "../../src/checkpoint/fp16.js";
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from "../../src/checkpoint/ggml-quants.js";
import { llama3FreqFactors, llama3FromFreqFactors } from "../../src/checkpoint/rope-freqs.js";
import { permuteQkInterleavedToNeox, permuteQkNeoxToInterleaved } from "../../src/checkpoint/rope-permute.js";
import { seeded } from "./checkpoint-util.js";

const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];
const fromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];

test("f32 -> f16 known values, overflow, subnormals and specials", () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-2), 0xc000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // halfway to the next step rounds up to inf
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  assert.equal(f32ToF16(NaN) & 0x7e00, 0x7e00);
  assert.equal(f32ToF16(-0), 0x8000);
  assert.equal(f32ToF16(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16(2 ** -25), 0x0000); // exactly half of it: ties to even (0)
  assert.equal(f32ToF16(3 * 2 ** -25), 0x0002); // 1.5 ulp: ties to even (2)
  assert.equal(f32ToF16(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToF16(2 ** -14 - 2 ** -25), 0x0400); // rounds up out of the subnormals
});

test("f32 -> f16 rounds to nearest even", () => {
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie between 0x3c00 and 0x3c01 -> even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie between 0x3c01 and 0x3c02 -> even
  assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above the tie
});

test("every finite f16 survives f16 -> f32 -> f16", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = f16ArrayToF32(all);
  const back = f32ArrayToF16(f);
  const bad: number[] = [];
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN payloads
    if (back[h] !== h || f[h] !== Math.fround(f16ToF32(h))) bad.push(h);
  }
  assert.deepEqual(bad, []);
});

test("bf16 conversions round to nearest even and round-trip", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(fromBits(0x3f808000)), 0x3f80); // tie -> even
  assert.equal(f32ToBf16(fromBits(0x3f818000)), 0x3f82); // tie -> even (up)
  assert.equal(f32ToBf16(fromBits(0x3f808001)), 0x3f81);
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  const bad: number[] = [];
  for (let b = 0; b < 65536; b++) {
    if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
    if (f32ToBf16(bf16ToF32(b)) !== b || bitsOf(bf16ToF32(b)) !== (b << 16) >>> 0) bad.push(b);
  }
  assert.deepEqual(bad, []);
});

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

test("q/k permutation moves row 2i+j to j*half+i within each head", () => {
  const inter = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]); // 2 heads x 4 rows x 1 col
  const neox = permuteQkInterleavedToNeox(inter, 2, 4);
  assert.deepEqual([...neox], [0, 2, 1, 3, 10, 12, 11, 13]);
  assert.deepEqual(permuteQkNeoxToInterleaved(neox, 2, 4), inter);
  // partial rotary: rows past rotaryDim stay put
  const partial = permuteQkInterleavedToNeox(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 1, 8, 4);
  assert.deepEqual([...partial], [0, 2, 1, 3, 4, 5, 6, 7]);
});

/** RoPE on one head vector at position pos: pairs (2i, 2i+1) or (i, i + d/2). */
function rope(v: Float32Array, pos: number, style: "interleaved" | "neox"): Float64Array {
  const d = v.length;
  const out = Float64Array.from(v);
  for (let i = 0; i < d / 2; i++) {
    const ang = pos / Math.pow(10000, (2 * i) / d);
    const [a, b] = style === "interleaved" ? [2 * i, 2 * i + 1] : [i, i + d / 2];
    out[a] = v[a] * Math.cos(ang) - v[b] * Math.sin(ang);
    out[b] = v[a] * Math.sin(ang) + v[b] * Math.cos(ang);
  }
  return out;
}

function matvec(w: Float32Array, x: Float32Array, rows: number): Float32Array {
  const cols = x.length;
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) y[r] += w[r * cols + c] * x[c];
  return y;
}

test("attention scores agree: interleaved weights + interleaved RoPE == permuted weights + neox RoPE", () => {
  const hd = 8;
  const cols = 12;
  const wq = seeded(hd * cols, 1);
  const wk = seeded(hd * cols, 2);
  const x1 = seeded(cols, 3);
  const x2 = seeded(cols, 4);
  const score = (q: Float64Array, k: Float64Array) => q.reduce((a, v, i) => a + v * k[i], 0);
  const sInter = score(rope(matvec(wq, x1, hd), 5, "interleaved"), rope(matvec(wk, x2, hd), 2, "interleaved"));
  const wqN = permuteQkInterleavedToNeox(wq, 1, hd);
  const wkN = permuteQkInterleavedToNeox(wk, 1, hd);
  const sNeox = score(rope(matvec(wqN, x1, hd), 5, "neox"), rope(matvec(wkN, x2, hd), 2, "neox"));
  assert.ok(Math.abs(sInter - sNeox) < 1e-5, `${sInter} vs ${sNeox}`);
});

test("llama3 frequency factors invert back to their parameters (Llama 3.1 and 3.2 settings)", () => {
  for (const factor of [8, 32]) {
    const s = { type: "llama3" as const, factor, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const f = llama3FreqFactors(500000, 128, s);
    assert.equal(f[0], 1); // highest frequency untouched
    assert.equal(f[63], factor); // lowest fully scaled
    const back = llama3FromFreqFactors(f, 500000, 128, 8192);
    assert.ok(back && back.type === "llama3");
    if (back?.type !== "llama3") return;
    assert.equal(back.factor, factor);
    assert.ok(Math.abs(back.lowFreqFactor - 1) < 1e-3 && Math.abs(back.highFreqFactor - 4) < 1e-3, JSON.stringify(back));
    assert.deepEqual(llama3FreqFactors(500000, 128, back).map((v, i) => Math.abs(v - f[i]) < 1e-3 * f[i] ? 0 : 1), new Float32Array(64));
  }
  assert.equal(llama3FromFreqFactors(new Float32Array(64).fill(1), 500000, 128)?.type, "none");
  assert.equal(llama3FromFreqFactors(seeded(64, 1).map((v) => 2 + v), 500000, 128), null);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { bf16ToF32, f16ArrayToF32, f16ToF32, f32ArrayToF16, f32ToBf16, f32ToF16 } from "../../src/checkpoint/fp16.js";

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
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue; // NaN payloads
    assert.equal(back[h], h, `half 0x${h.toString(16)}`);
    assert.equal(f[h], Math.fround(f16ToF32(h)));
  }
});

test("bf16 conversions round to nearest even and round-trip", () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(fromBits(0x3f808000)), 0x3f80); // tie -> even
  assert.equal(f32ToBf16(fromBits(0x3f818000)), 0x3f82); // tie -> even (up)
  assert.equal(f32ToBf16(fromBits(0x3f808001)), 0x3f81);
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  for (let b = 0; b < 65536; b++) {
    if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
    assert.equal(f32ToBf16(bf16ToF32(b)), b);
    assert.equal(bitsOf(bf16ToF32(b)), (b << 16) >>> 0);
  }
});

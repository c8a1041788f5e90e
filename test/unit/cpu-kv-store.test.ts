/**
 * The KV write's f32 -> bf16 / fp16 rounding (assembly/simd.ts storeAs: eight lanes at a time,
 * a scalar tail) against checkpoint/fp16.ts bit for bit: round to nearest even at every
 * exponent, halfway cases, fp16 subnormals and underflow, overflow to Inf, Inf and NaN.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { kvWrite } from "../../src/backends/cpu/kernels.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { f32ToBf16, f32ToF16 } from "../../src/checkpoint/fp16.js";
import { randomF32 } from "./cpu-util.js";

/** Values that probe every rounding case of both formats, then random ones over many magnitudes. */
function probes(): Float32Array {
  const bits = new Uint32Array(12 * 425);
  let i = 0;
  const put = (b: number) => {
    if (i < bits.length) bits[i++] = b >>> 0;
  };
  for (const sign of [0, 0x80000000]) {
    // exponents across fp16's subnormal, normal and overflow ranges, and bf16's whole range
    for (let e = 90; e <= 160; e += 1) {
      for (const m of [0, 1, 0x0fff, 0x1000, 0x1001, 0x3000, 0x7fff, 0x8000, 0x8001, 0x18000, 0x7fe000, 0x7ff000, 0x7fffff]) put(sign | (e << 23) | m);
    }
    for (const b of [0, 0x7f800000, 0x7f800001, 0x7fc00000, 0x7fffffff, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000, 0x33000000, 0x33000001, 0x337fffff, 0x387fe000, 0x387ff000, 0x387fffff, 0x38800000, 0x7f7fffff, 0x00000001]) put(sign | b);
  }
  const rnd = new Uint32Array(randomF32(bits.length, 11, 1).buffer);
  const scale = randomF32(bits.length, 12, 1);
  for (let j = 0; i < bits.length; j++) put((rnd[j] & 0x807fffff) | ((Math.floor(Math.abs(scale[j]) * 80) + 90) << 23));
  return new Float32Array(bits.buffer);
}

test("KV write rounds f32 to bf16 and fp16 exactly as the reference does", () => {
  const rt = new CpuRuntime({ threads: 1 });
  try {
    const x = probes();
    const headDim = 12; // a row of one head: eight lanes, then four through the scalar tail
    for (const [dtype, ref] of [["bf16", f32ToBf16], ["f16", f32ToF16]] as const) {
      const { k, v } = kvWrite(rt, x, x, headDim, headDim, dtype);
      const got = [new Uint16Array(k.buffer, k.byteOffset, x.length), new Uint16Array(v.buffer, v.byteOffset, x.length)];
      for (const g of got) {
        for (let i = 0; i < x.length; i++) {
          const want = ref(x[i]);
          if (g[i] !== want) assert.fail(`${dtype}: ${x[i]} (bits 0x${new Uint32Array(x.buffer)[i].toString(16)}) -> 0x${g[i].toString(16)}, want 0x${want.toString(16)}`);
        }
      }
    }
  } finally {
    rt.close();
  }
});

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Packed int8 / int4 rows dequantized to f32 (qmatmul.ts): row-major and interleaved. Many
 * tokens (prefill) dequantize a row block into scratch once and run matmul.ts's f32 tiles
 * over it; the BLAS path widens rows with the same code (dequantRowsShare).
 */
import { DT_F32 } from "./simd";
import { matmulRange } from "./matmul";
import { chunkStride, rowAt, wElem, DT_Q8 } from "./qmatmul";

/** Rows [n0, n1) of w as f32 into dst [n1 - n0, K]. */
export function dequantRows(dt: i32, dst: usize, q: usize, scales: usize, zeros: usize, G: i32, K: i32, n0: i32, n1: i32): void {
  const NG = (K + G - 1) / G;
  const rb: usize = dt == DT_Q8 ? <usize>K : <usize>((K + 1) >> 1);
  for (let n = n0; n < n1; n++) {
    const w = q + <usize>n * rb;
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let g = 0; g < NG; g++) {
      const s = load<f32>(scales + ((<usize>n * <usize>NG + <usize>g) << 2));
      const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + <usize>g) : 8;
      const g1 = min(g * G + G, K);
      let k = g * G;
      if (dt == DT_Q8) {
        const sv = f32x4.splat(s);
        for (; k + 16 <= g1; k += 16) {
          const v = v128.load(w + <usize>k);
          const lo = i16x8.extend_low_i8x16_s(v), hi = i16x8.extend_high_i8x16_s(v);
          const p = o + (<usize>k << 2);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), sv));
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), sv), 16);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), sv), 32);
          v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), sv), 48);
        }
      }
      for (; k < g1; k++) store<f32>(o + (<usize>k << 2), s * <f32>(wElem(dt, w, k) - z));
    }
  }
}

/** Many tokens (or odd groups): row blocks dequantized into scratch, then the f32 tiles. */
export function matmulDequant(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRows(dt, scratch, q, scales, zeros, G, K, nb, ne);
    // row n of the f32 view lives at scratch + (n - nb) * K * 4
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

/** Rows [n0, n1) of w in the interleaved layout (groups rowBlocked) as f32 into dst [n1 - n0, K]. */
export function dequantRowsIl(dt: i32, dst: usize, q: usize, scales: usize, zeros: usize, G: i32, K: i32, n0: i32, n1: i32): void {
  const NG = (K + G - 1) / G;
  const cs = chunkStride(dt, true);
  const m = i8x16.splat(0xf);
  for (let n = n0; n < n1; n++) {
    let wc = rowAt(dt, true, q, K, n);
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let k = 0; k < K; k += 32) {
      const g = <usize>(k / G);
      const s = load<f32>(scales + ((<usize>n * <usize>NG + g) << 2));
      const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + g) : 8;
      const p = o + (<usize>k << 2);
      if (k + 32 <= K) {
        let c0: v128, c1: v128;
        if (dt == DT_Q8) {
          c0 = v128.load(wc);
          c1 = v128.load(wc, 16);
        } else {
          const v = v128.load(wc);
          const lo = v128.and(v, m), hi = v128.and(i16x8.shr_u(v, 4), m);
          const zv = i8x16.splat(<i8>z);
          // nibbles back in column order: low (even column), high (odd) of each byte
          c0 = i8x16.sub(v128.shuffle<i8>(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), zv);
          c1 = i8x16.sub(v128.shuffle<i8>(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), zv);
        }
        const sv = f32x4.splat(s);
        let e = i16x8.extend_low_i8x16_s(c0);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv));
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 16);
        e = i16x8.extend_high_i8x16_s(c0);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 32);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 48);
        e = i16x8.extend_low_i8x16_s(c1);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 64);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 80);
        e = i16x8.extend_high_i8x16_s(c1);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e)), sv), 96);
        v128.store(p, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e)), sv), 112);
      } else {
        for (let j = 0; j < K - k; j++) store<f32>(p + (<usize>j << 2), s * <f32>(wElem(dt, wc, j) - z));
      }
      wc += cs;
    }
  }
}

/** Many tokens, interleaved layout: row blocks dequantized into scratch, then the f32 tiles. */
export function matmulDequantIl(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, scales: usize, zeros: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRowsIl(dt, scratch, q, scales, zeros, G, K, nb, ne);
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Packed int8 / int4 rows dequantized to f32 (qmatmul.ts): row-major and interleaved. Many
 * tokens (prefill) dequantize a row block into scratch once and run matmul.ts's f32 tiles
 * over it; the BLAS path widens rows with the same code (dequantRowsShare).
 */
import { DT_F32 } from "./simd";
import { matmulRange } from "./matmul";
import { chunkStride, padK, rowAt, wElem, DT_Q8 } from "./qmatmul";

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
  for (let n = n0; n < n1; n++) {
    let wc = rowAt(dt, true, q, K, n);
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let k = 0; k < K; k += 32) {
      const g = <usize>(k / G);
      const s = load<f32>(scales + ((<usize>n * <usize>NG + g) << 2));
      const z: i32 = dt == DT_Q8 ? 0 : zeros ? <i32>load<u8>(zeros + <usize>n * <usize>NG + g) : 8;
      const p = o + (<usize>k << 2);
      if (k + 32 <= K) {
        if (dt == DT_Q8) storeInt8Chunk(v128.load(wc), v128.load(wc, 16), s, p);
        else storeInt4Chunk(v128.load(wc), z, s, p);
      } else {
        for (let j = 0; j < K - k; j++) store<f32>(p + (<usize>j << 2), s * <f32>(wElem(dt, wc, j) - z));
      }
      wc += cs;
    }
  }
}

/** 16 bytes of nibbles (column 2i low, 2i+1 high), less the zero point z, times s: 32 f32 at p. */
@inline function storeInt4Chunk(v: v128, z: i32, s: f32, p: usize): void {
  const m = i8x16.splat(0xf);
  const lo = v128.and(v, m), hi = v128.and(i16x8.shr_u(v, 4), m);
  const zv = i8x16.splat(<i8>z);
  // nibbles back in column order: low (even column), high (odd) of each byte
  const c0 = i8x16.sub(v128.shuffle<i8>(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), zv);
  const c1 = i8x16.sub(v128.shuffle<i8>(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), zv);
  storeInt8Chunk(c0, c1, s, p);
}

/** 32 int8 values (c0: columns 0..15, c1: 16..31) times s: 32 f32 at p. */
@inline function storeInt8Chunk(c0: v128, c1: v128, s: f32, p: usize): void {
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

/** Rows [n0, n1) of w in DT_Q4L (qmatmul8.ts: a block's 4 rows in the lanes) as f32 into dst [n1 - n0, K]. */
export function dequantRowsL(dst: usize, q: usize, s4: usize, z4: usize, G: i32, K: i32, n0: i32, n1: i32): void {
  const Kp = padK(K);
  const NC = Kp >> 5; // chunks a row
  const NG = (K + G - 1) / G; // groups a row
  const cpg = G >> 5;
  const full = K >> 5; // chunks of 32 columns inside K
  const rowBytes = <usize>K << 2;
  for (let n = n0; n < n1; ) {
    const blk = <usize>(n >> 2);
    const o = dst + <usize>(n - n0) * rowBytes;
    if ((n & 3) != 0 || n + 4 > n1) {
      // a row of a block the range cuts
      for (let c = 0; c < NC; c++) chunkL(o, q, s4, z4, K, NC, NG, cpg, blk, c, n & 3);
      n++;
      continue;
    }
    // a whole block: each chunk's 4 words of each row back together (a 4 x 4 transpose of
    // 32-bit words), then as the interleaved layout's chunks
    const wb = q + blk * (<usize>Kp << 1);
    for (let c = 0; c < full; c++) {
      const wc = wb + (<usize>c << 6);
      const v0 = v128.load(wc), v1 = v128.load(wc, 16), v2 = v128.load(wc, 32), v3 = v128.load(wc, 48);
      const a = v128.shuffle<i32>(v0, v1, 0, 4, 1, 5), b = v128.shuffle<i32>(v2, v3, 0, 4, 1, 5);
      const e = v128.shuffle<i32>(v0, v1, 2, 6, 3, 7), f = v128.shuffle<i32>(v2, v3, 2, 6, 3, 7);
      const at = (blk * <usize>NG + <usize>(c / cpg)) << 2;
      const p = o + (<usize>c << 7);
      storeInt4Chunk(v128.shuffle<i64>(a, b, 0, 2), zeroAt(z4, at), load<f32>(s4 + (at << 2)), p);
      storeInt4Chunk(v128.shuffle<i64>(a, b, 1, 3), zeroAt(z4, at + 1), load<f32>(s4 + (at << 2), 4), p + rowBytes);
      storeInt4Chunk(v128.shuffle<i64>(e, f, 0, 2), zeroAt(z4, at + 2), load<f32>(s4 + (at << 2), 8), p + 2 * rowBytes);
      storeInt4Chunk(v128.shuffle<i64>(e, f, 1, 3), zeroAt(z4, at + 3), load<f32>(s4 + (at << 2), 12), p + 3 * rowBytes);
    }
    for (let r = 0; r < 4; r++) for (let c = full; c < NC; c++) chunkL(o + <usize>r * rowBytes, q, s4, z4, K, NC, NG, cpg, blk, c, r);
    n += 4;
  }
}

@inline function zeroAt(z4: usize, at: usize): i32 {
  return z4 ? <i32>load<u8>(z4 + at) : 8;
}

/** Chunk c of row r of block blk in DT_Q4L (NC chunks, NG groups of cpg chunks a row), byte by byte, into the row's f32 at o (columns past K not written). */
function chunkL(o: usize, q: usize, s4: usize, z4: usize, K: i32, NC: i32, NG: i32, cpg: i32, blk: usize, c: i32, r: i32): void {
  const at = ((blk * <usize>NG + <usize>(c / cpg)) << 2) | <usize>r;
  const z = zeroAt(z4, at);
  const s = load<f32>(s4 + (at << 2));
  const wc = q + blk * (<usize>NC << 6) + (<usize>c << 6) + (<usize>r << 2);
  for (let j = 0; j < 16; j++) {
    const k = (c << 5) + (j << 1);
    if (k >= K) break;
    const b = <i32>load<u8>(wc + (<usize>(j >> 2) << 4) + <usize>(j & 3));
    store<f32>(o + (<usize>k << 2), s * <f32>((b & 0xf) - z));
    if (k + 1 < K) store<f32>(o + (<usize>(k + 1) << 2), s * <f32>((b >> 4) - z));
  }
}

/** Many tokens, DT_Q4L: row blocks dequantized into scratch, then the f32 tiles. */
export function matmulDequantL(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, s4: usize, z4: usize, G: i32, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRowsL(scratch, q, s4, z4, G, K, nb, ne);
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * K-quant rows dequantized to f32 (kquant.ts), rounded as the reference does: many tokens
 * (prefill) dequantize a row block into scratch once and run matmul.ts's f32 tiles over it;
 * the BLAS path dequantizes rows with the same code (dequantRowsKShare).
 */
import { DT_F32 } from "./simd";
import { matmulRange } from "./matmul";
import { blockBytes, blockStride, rowAt, DT_Q4K, DT_Q5K, DT_Q6K } from "./kquant";
import { q6Quarter } from "./kquant-dots";

/** 16 integers (i8x16; signed or not) * scale - min as f32 at p [16]: two roundings, as the reference. */
@inline function store16(p: usize, q: v128, signed: bool, scale: f32, min: f32): void {
  const s = f32x4.splat(scale), m = f32x4.splat(min);
  const lo = signed ? i16x8.extend_low_i8x16_s(q) : i16x8.extend_low_i8x16_u(q);
  const hi = signed ? i16x8.extend_high_i8x16_s(q) : i16x8.extend_high_i8x16_u(q);
  v128.store(p, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), s), m));
  v128.store(p, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), s), m), 16);
  v128.store(p, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), s), m), 32);
  v128.store(p, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), s), m), 48);
}

/** One super-block at w as f32 into o [256]. */
@inline function dequantBlock(dt: i32, w: usize, o: usize): void {
  const d = load<f32>(w);
  if (dt == DT_Q6K) {
    for (let h = 0; h < 2; h++) {
      for (let l0 = 0; l0 < 32; l0 += 16) {
        const ql = w + 20 + <usize>(64 * h + l0);
        const a = v128.load(ql), b = v128.load(ql, 32);
        const hb = v128.load(w + 148 + <usize>(32 * h + l0));
        const col = 128 * h + l0;
        const s = w + 4 + <usize>(col >> 4);
        const p = o + (<usize>col << 2);
        const off = i8x16.splat(32);
        store16(p, i8x16.sub(q6Quarter(a, b, hb, 0), off), true, d * <f32>load<i8>(s), 0);
        store16(p + 128, i8x16.sub(q6Quarter(a, b, hb, 1), off), true, d * <f32>load<i8>(s + 2), 0);
        store16(p + 256, i8x16.sub(q6Quarter(a, b, hb, 2), off), true, d * <f32>load<i8>(s + 4), 0);
        store16(p + 384, i8x16.sub(q6Quarter(a, b, hb, 3), off), true, d * <f32>load<i8>(s + 6), 0);
      }
    }
    return;
  }
  const dmin = load<f32>(w, 4);
  const m4 = i8x16.splat(0x0f);
  const b5 = i8x16.splat(0x10);
  const qs = w + (dt == DT_Q4K ? 24 : 56);
  for (let c = 0; c < 4; c++) {
    const q0 = v128.load(qs + (<usize>c << 5)), q1 = v128.load(qs + (<usize>c << 5), 16);
    let l0 = v128.and(q0, m4), l1 = v128.and(q1, m4);
    let h0 = i8x16.shr_u(q0, 4), h1 = i8x16.shr_u(q1, 4);
    if (dt == DT_Q5K) {
      const qh0 = v128.load(w + 24), qh1 = v128.load(w + 40);
      l0 = v128.or(l0, v128.and(i8x16.shl(i8x16.shr_u(qh0, 2 * c), 4), b5));
      l1 = v128.or(l1, v128.and(i8x16.shl(i8x16.shr_u(qh1, 2 * c), 4), b5));
      h0 = v128.or(h0, v128.and(i8x16.shl(i8x16.shr_u(qh0, 2 * c + 1), 4), b5));
      h1 = v128.or(h1, v128.and(i8x16.shl(i8x16.shr_u(qh1, 2 * c + 1), 4), b5));
    }
    const sl = d * <f32>load<u8>(w + 8 + 2 * <usize>c), ml = dmin * <f32>load<u8>(w + 16 + 2 * <usize>c);
    const sh = d * <f32>load<u8>(w + 9 + 2 * <usize>c), mh = dmin * <f32>load<u8>(w + 17 + 2 * <usize>c);
    const p = o + (<usize>c << 8);
    store16(p, l0, false, sl, ml);
    store16(p + 64, l1, false, sl, ml);
    store16(p + 128, h0, false, sh, mh);
    store16(p + 192, h1, false, sh, mh);
  }
}

/** Rows [n0, n1) of w as f32 into dst [n1 - n0, K]. */
@inline function dequantRows(dt: i32, dst: usize, q: usize, K: i32, n0: i32, n1: i32): void {
  const nb = K >> 8;
  const bb = blockBytes(dt);
  const bs = blockStride(dt);
  for (let n = n0; n < n1; n++) {
    const w = rowAt(dt, q, K, n);
    const o = dst + ((<usize>(n - n0) * <usize>K) << 2);
    for (let b = 0; b < nb; b++) dequantBlock(dt, w + <usize>b * bs, o + (<usize>b << 10));
  }
}

export function dequantRowsAny(dt: i32, dst: usize, q: usize, K: i32, n0: i32, n1: i32): void {
  if (dt == DT_Q4K) dequantRows(DT_Q4K, dst, q, K, n0, n1);
  else if (dt == DT_Q5K) dequantRows(DT_Q5K, dst, q, K, n0, n1);
  else dequantRows(DT_Q6K, dst, q, K, n0, n1);
}

/** Many tokens: row blocks dequantized into scratch, then the f32 tiles. */
export function matmulDequant(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRowsAny(dt, scratch, q, K, nb, ne);
    // row n of the f32 view lives at scratch + (n - nb) * K * 4
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

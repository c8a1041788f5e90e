// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * out [T, N] = x [T, K] @ w [N, K]^T (+ bias) with w a GGUF K-quant (Q4_K, Q5_K, Q6_K) in
 * the kernel form ../kquant-layout.ts places: Q4_K / Q5_K rows in groups of 4 (padded with zero
 * rows), a group's super-blocks of 256 columns in order, the 4 rows' block b side by side; Q6_K
 * row-major; each block with its scales decoded at bind (f32 d / dmin, a byte per sub-block scale):
 *   DT_Q4K (152 B): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | u8 qs[128]
 *   DT_Q5K (184 B): f32 d | f32 dmin | u8 sc[8] | u8 m[8] | u8 qh[32] | u8 qs[128]
 *   DT_Q6K (212 B): f32 d | i8 sc[16] | u8 ql[128] | u8 qh[64]
 * qs / qh / ql are GGUF's bytes as they are (checkpoint/ggml-kquants.ts): Q4_K chunk c of
 * 64 columns is qs[32c ..]: low nibbles columns 64c.., high nibbles 64c + 32..; Q5_K adds
 * bit 2c / 2c + 1 of qh[l] as bit 4; Q6_K half h: ql[64h + l] low / high nibbles and
 * ql[64h + 32 + l] low / high give columns 128h + l, +64 and +32, +96, with 2-bit pairs
 * of qh[32h + l] above them, minus 32. In that order 16 bytes of weights come apart into
 * 16 consecutive columns, so the activations stay in column order.
 *
 * Few tokens (decode): each thread quantizes the x rows into its scratch as int16 with one
 * scale per token (as qmatmul.ts; plus each 32-column sub-block's sum, for the mins), then
 * per row and token: integer dots per sub-block (i32x4.dot_i16x8_s over the weights
 * widened to i16), each scaled in f32 by d * sc[s]; minus sum_s dmin * m[s] * xsum[s].
 * On the relaxed build they decode with 8-bit activations instead, one scale per
 * super-block (llama.cpp's Q8_K), the 4- / 5- / 6-bit values being the 7-bit unsigned operand
 * of i16x8.relaxed_dot_i8x16_i7x16_s (matmulDotsR).
 * Many tokens (prefill): row blocks dequantized into scratch (the reference's values:
 * (d * sc) * q - dmin * m, rounded to f32 at each step) and the f32 tiles of matmul.ts.
 */
import { activeThreads, fma, hsum, shareStart, DT_F32 } from "./simd";
import { matmulRange } from "./matmul";

export const DT_Q4K: i32 = 8;
export const DT_Q5K: i32 = 9;
export const DT_Q6K: i32 = 10;

/** From this many tokens on, dequantizing a row block once beats integer dots per token. */
const PREFILL_T: i32 = 16;

@inline function blockBytes(dt: i32): usize {
  return dt == DT_Q4K ? 152 : dt == DT_Q5K ? 184 : 212;
}

/** Rows side by side: 4 for Q4_K / Q5_K (their decode takes 4 rows a pass), 1 for Q6_K (four of its blocks at once measured slower). */
@inline function groupRows(dt: i32): usize {
  return dt == DT_Q6K ? 1 : 4;
}

/** Bytes from one super-block of a row to its next. */
@inline function blockStride(dt: i32): usize {
  return groupRows(dt) * blockBytes(dt);
}

/** Where row n's first super-block is: its group of groupRows rows, then its place among them. */
@inline function rowAt(dt: i32, q: usize, K: i32, n: i32): usize {
  const G = groupRows(dt);
  return q + (<usize>n / G) * <usize>(K >> 8) * G * blockBytes(dt) + (<usize>n % G) * blockBytes(dt);
}

/** Bytes of one quantized token in scratch: f32 scale, 12 pad bytes, int16 [K], f32 sums [K / 32] (the 8-bit token of quantizeTok8, ~1.2 K bytes, fits too). */
@inline function tokBytes(K: i32): i32 {
  return 16 + (K << 1) + (K >> 3);
}

/**
 * x row [K] f32 (K % 256 == 0) -> dst: scale max|x| / 32767, int16 [K], then each 32 columns'
 * sum of the int16 values as f32. striped (Q4_K): each 16-column run stored as its 8 even
 * columns, then its 8 odd ones: the order in which 16-bit lanes of nibble bytes come apart.
 */
function quantizeTok(dst: usize, x: usize, K: i32, striped: bool): void {
  let m = f32x4.splat(0);
  for (let k = 0; k < K; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
  const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  store<f32>(dst, amax / 32767);
  const inv = f32x4.splat(amax > 0 ? <f32>32767 / amax : 0);
  const q = dst + 16;
  const sums = q + (<usize>K << 1);
  const one = i16x8.splat(1);
  for (let k = 0; k < K; k += 32) {
    let s = i32x4.splat(0);
    for (let j = 0; j < 32; j += 16) {
      const p = x + (<usize>(k + j) << 2);
      const h0 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 16), inv))));
      const h1 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 32), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 48), inv))));
      const o = q + (<usize>(k + j) << 1);
      if (striped) {
        v128.store(o, v128.shuffle<i16>(h0, h1, 0, 2, 4, 6, 8, 10, 12, 14));
        v128.store(o, v128.shuffle<i16>(h0, h1, 1, 3, 5, 7, 9, 11, 13, 15), 16);
      } else {
        v128.store(o, h0);
        v128.store(o, h1, 16);
      }
      s = i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(h0, one), i32x4.dot_i16x8_s(h1, one)));
    }
    store<f32>(sums + (<usize>k >> 3), <f32>(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)));
  }
}

/** sum over 16 columns of q (i8x16, unsigned) * x (int16 at xo), in 4 i32 lanes. */
@inline function dot16u(q: v128, xo: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(q), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(q), v128.load(xo, 16)));
}

/** The nibble at bits (12 - up) .. (15 - up) of each 16-bit lane of q, dotted with 8 int16 at xo. */
@inline function nibDot(q: v128, up: i32, xo: usize): v128 {
  return i32x4.dot_i16x8_s(i16x8.shr_u(i16x8.shl(q, up), 12), v128.load(xo));
}

/** Same, q signed. */
@inline function dot16s(q: v128, xo: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), v128.load(xo)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), v128.load(xo, 16)));
}

/**
 * Chunk c of a Q4_K / Q5_K super-block: 64 columns, sub-blocks 2c (low nibbles) and 2c + 1
 * (high nibbles), scaled by sLo / sHi and added to acc. hb (Q5_K): qh[0..15] / qh[16..31]
 * shifted down by 2c, so bits 0 / 1 of each byte are the fifth bits of this chunk. Byte-wise
 * shifts are done on 16-bit lanes and masked (WASM's i8 shifts are emulated on x86).
 */
@inline function chunk45(dt: i32, q0: v128, q1: v128, hb0: v128, hb1: v128, xo: usize, sLo: f32, sHi: f32, acc: v128): v128 {
  let lo: v128, hi: v128;
  if (dt == DT_Q4K) {
    // x striped: lane i of 16 bytes holds columns 2i (bits 0..3), 2i + 1 (8..11) and, 32 on, 2i (4..7), 2i + 1 (12..15)
    // masked in place (x1, x256, x16), the scaled sums shifted back once per sub-block (exact: multiples)
    const mA = i16x8.splat(0x000f), mB = i16x8.splat(0x0f00), mC = i16x8.splat(0x00f0);
    const a = i32x4.add(i32x4.dot_i16x8_s(v128.and(q0, mA), v128.load(xo)), i32x4.dot_i16x8_s(v128.and(q1, mA), v128.load(xo + 32)));
    const b = i32x4.add(i32x4.dot_i16x8_s(v128.and(q0, mB), v128.load(xo + 16)), i32x4.dot_i16x8_s(v128.and(q1, mB), v128.load(xo + 48)));
    const cc = i32x4.add(i32x4.dot_i16x8_s(v128.and(q0, mC), v128.load(xo + 64)), i32x4.dot_i16x8_s(v128.and(q1, mC), v128.load(xo + 96)));
    const dd = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(q0, 12), v128.load(xo + 80)), i32x4.dot_i16x8_s(i16x8.shr_u(q1, 12), v128.load(xo + 112)));
    lo = i32x4.add(a, i32x4.shr_s(b, 8));
    hi = i32x4.add(i32x4.shr_s(cc, 4), dd);
  } else {
    const m4 = i8x16.splat(0x0f), b5 = i8x16.splat(0x10);
    const l0 = v128.or(v128.and(q0, m4), v128.and(i16x8.shl(hb0, 4), b5));
    const l1 = v128.or(v128.and(q1, m4), v128.and(i16x8.shl(hb1, 4), b5));
    const h0 = v128.or(v128.and(i16x8.shr_u(q0, 4), m4), v128.and(i16x8.shl(hb0, 3), b5));
    const h1 = v128.or(v128.and(i16x8.shr_u(q1, 4), m4), v128.and(i16x8.shl(hb1, 3), b5));
    lo = i32x4.add(dot16u(l0, xo), dot16u(l1, xo + 32));
    hi = i32x4.add(dot16u(h0, xo + 64), dot16u(h1, xo + 96));
  }
  acc = fma(f32x4.convert_i32x4_s(lo), f32x4.splat(sLo), acc);
  return fma(f32x4.convert_i32x4_s(hi), f32x4.splat(sHi), acc);
}

/** Bytes at p [8] (u8) as two f32x4 times f: lanes 0..3, 4..7. */
@inline function u8x8ToF32(p: usize, f: v128, hi: bool): v128 {
  const h = i16x8.extend_low_i8x16_u(v128.load64_zero(p));
  // convert_s: the values are small and positive (V8 emulates the unsigned convert)
  return f32x4.mul(f32x4.convert_i32x4_s(hi ? i32x4.extend_high_i16x8_u(h) : i32x4.extend_low_i16x8_u(h)), f);
}

/** Q4_K / Q5_K mins: sum_s (dmin * m[s]) * xsum[s] over the 8 sub-blocks (xsum at xs), 4 sub-blocks a lane group. */
@inline function mins(w: usize, xs: usize): v128 {
  const dmin = f32x4.splat(load<f32>(w, 4));
  return fma(u8x8ToF32(w + 16, dmin, false), v128.load(xs), f32x4.mul(u8x8ToF32(w + 16, dmin, true), v128.load(xs, 16)));
}

/**
 * Q4_K / Q5_K super-block at w against a quantized token's 256 columns (x int16, xs its 8
 * sub-block sums), added to acc (f32 lanes, before the token's scale). A loop over the 4
 * chunks, not unrolled: unrolled, V8 hoisted every load to the top and spilled them.
 */
@inline function block45(dt: i32, w: usize, x: usize, xs: usize, acc: v128): v128 {
  const d = load<f32>(w);
  const qs = w + (dt == DT_Q4K ? 24 : 56);
  let hb0 = dt == DT_Q5K ? v128.load(w + 24) : i8x16.splat(0);
  let hb1 = dt == DT_Q5K ? v128.load(w + 40) : i8x16.splat(0);
  for (let c = 0; c < 4; c++) {
    const o = <usize>c << 5;
    // scale[s] = d * sc[s], rounded to f32 as the reference does
    acc = chunk45(dt, v128.load(qs + o), v128.load(qs + o, 16), hb0, hb1, x + (<usize>c << 7), d * <f32>load<u8>(w + 8 + (o >> 4)), d * <f32>load<u8>(w + 9 + (o >> 4)), acc);
    if (dt == DT_Q5K) {
      hb0 = i16x8.shr_u(hb0, 2);
      hb1 = i16x8.shr_u(hb1, 2);
    }
  }
  return f32x4.sub(acc, mins(w, xs));
}

/** The 16 Q6_K values (u in [0, 63]) of quarter r of 32-column group l0 of half h: see the header (16-bit shifts, masked). */
@inline function q6Quarter(a: v128, b: v128, hb: v128, r: i32): v128 {
  const m4 = i8x16.splat(0x0f), m2 = i8x16.splat(0x30);
  if (r == 0) return v128.or(v128.and(a, m4), v128.and(i16x8.shl(hb, 4), m2));
  if (r == 1) return v128.or(v128.and(b, m4), v128.and(i16x8.shl(hb, 2), m2));
  if (r == 2) return v128.or(v128.and(i16x8.shr_u(a, 4), m4), v128.and(hb, m2));
  return v128.or(v128.and(i16x8.shr_u(b, 4), m4), v128.and(i16x8.shr_u(hb, 2), m2));
}

/**
 * Q6_K super-block at w against a quantized token's 256 columns, added to acc: the int16
 * token (x), or with `eight` (a constant once inlined) the 8-bit one (X at x, its block
 * scale xs, i16 sums of X per 16 columns at i16: the values' offset of 32 comes off once).
 */
@inline function block6(w: usize, x: usize, acc: v128, eight: bool = false, xs: f32 = 0, i16: usize = 0): v128 {
  // sc[s] (int8) of sub-blocks 0 .. 7 and 8 .. 15 as i16 lanes
  const sb = v128.load(w + 4);
  const e0 = i16x8.extend_low_i8x16_s(sb), e1 = i16x8.extend_high_i8x16_s(sb);
  // (the relaxed dot compiles into the relaxed build only)
  if (ASC_FEATURE_RELAXED_SIMD) {
    if (eight) {
      // sum_s sc[s] * ((u . X) - 32 * sum X) over sub-blocks s, all in integers, then d * xs once
      let ia = q6GroupR(w, x, 0, 0, e0, i32x4.splat(0));
      ia = q6GroupR(w, x, 0, 16, e0, ia);
      ia = q6GroupR(w, x, 1, 0, e1, ia);
      ia = q6GroupR(w, x, 1, 16, e1, ia);
      const off = i32x4.add(i32x4.dot_i16x8_s(e0, v128.load(i16)), i32x4.dot_i16x8_s(e1, v128.load(i16, 16)));
      return fma(f32x4.convert_i32x4_s(i32x4.sub(ia, i32x4.shl(off, 5))), f32x4.splat(load<f32>(w) * xs), acc);
    }
  }
  // scale[s] = d * sc[s], sub-blocks 4j .. 4j + 3 in lanes
  const d = f32x4.splat(load<f32>(w));
  const sc0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e0)), d);
  const sc1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e0)), d);
  const sc2 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(e1)), d);
  const sc3 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(e1)), d);
  acc = q6Group(w, x, 0, 0, sc0, sc1, acc);
  acc = q6Group(w, x, 0, 16, sc0, sc1, acc);
  acc = q6Group(w, x, 1, 0, sc2, sc3, acc);
  return q6Group(w, x, 1, 16, sc2, sc3, acc);
}

/** Lane i (a constant once inlined) of v in every lane. */
@inline function bcast(v: v128, i: i32): v128 {
  if (i == 0) return i32x4.shuffle(v, v, 0, 0, 0, 0);
  if (i == 1) return i32x4.shuffle(v, v, 1, 1, 1, 1);
  if (i == 2) return i32x4.shuffle(v, v, 2, 2, 2, 2);
  return i32x4.shuffle(v, v, 3, 3, 3, 3);
}

/**
 * Columns 128h + l0 + 32r + [0, 16) for r = 0..3 (h, l0 constant): sub-blocks 8h + l0 / 16 + 2r,
 * scales in lanes of lo (sub-blocks 8h .. 8h + 3) and hi (8h + 4 .. 8h + 7), added to acc.
 */
@inline function q6Group(w: usize, x: usize, h: i32, l0: i32, lo: v128, hi: v128, acc: v128): v128 {
  const off = i8x16.splat(32);
  const ql = w + 20 + <usize>(64 * h + l0);
  const a = v128.load(ql), b = v128.load(ql, 32);
  const hb = v128.load(w + 148 + <usize>(32 * h + l0));
  const xo = x + (<usize>(128 * h + l0) << 1);
  const j = l0 >> 4; // sub-block within the half: j + 2r
  acc = fma(f32x4.convert_i32x4_s(dot16s(i8x16.sub(q6Quarter(a, b, hb, 0), off), xo)), bcast(lo, j), acc);
  acc = fma(f32x4.convert_i32x4_s(dot16s(i8x16.sub(q6Quarter(a, b, hb, 1), off), xo + 64)), bcast(lo, j + 2), acc);
  acc = fma(f32x4.convert_i32x4_s(dot16s(i8x16.sub(q6Quarter(a, b, hb, 2), off), xo + 128)), bcast(hi, j), acc);
  return fma(f32x4.convert_i32x4_s(dot16s(i8x16.sub(q6Quarter(a, b, hb, 3), off), xo + 192)), bcast(hi, j + 2), acc);
}

/** dot(row w, quantized token xt) before the token's scale: nb super-blocks, bs bytes apart. */
@inline function rowDot(dt: i32, w: usize, bs: usize, xt: usize, K: i32): f32 {
  const nb = K >> 8;
  const x = xt + 16;
  const xs = x + (<usize>K << 1);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * bs;
    if (dt == DT_Q6K) acc = block6(wb, x + (<usize>b << 9), acc);
    else acc = block45(dt, wb, x + (<usize>b << 9), xs + (<usize>b << 5), acc);
  }
  return hsum(acc);
}

/** [sum a, sum b, sum c, sum d] */
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/** The 4 rows of group g (their super-blocks side by side: one stream, four independent chains) against one token. */
@inline function rowDot4(dt: i32, w: usize, xt: usize, K: i32): v128 {
  const nb = K >> 8;
  const bb = blockBytes(dt);
  const x = xt + 16;
  const xs = x + (<usize>K << 1);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const wb = w + <usize>b * 4 * bb;
    const xb = x + (<usize>b << 9);
    if (dt == DT_Q6K) {
      a0 = block6(wb, xb, a0);
      a1 = block6(wb + bb, xb, a1);
      a2 = block6(wb + 2 * bb, xb, a2);
      a3 = block6(wb + 3 * bb, xb, a3);
    } else {
      const xsb = xs + (<usize>b << 5);
      a0 = block45(dt, wb, xb, xsb, a0);
      a1 = block45(dt, wb + bb, xb, xsb, a1);
      a2 = block45(dt, wb + 2 * bb, xb, xsb, a2);
      a3 = block45(dt, wb + 3 * bb, xb, xsb, a3);
    }
  }
  return hsum4(a0, a1, a2, a3);
}

// ---- decode on the relaxed build: 8-bit activations, as llama.cpp's Q8_K ----
// The token (scratch): int8 X [K] in column order, one scale per super-block xs [K / 256]
// f32 (max|x| of its 256 columns / 127), then the sum of X per 16 columns [K / 16] and per
// 32 columns [K / 32] as i16 (Q6_K's offset of 32 and Q4_K / Q5_K's mins, taken off in
// integers; |sum| <= 32 * 127).

/** Where the 8-bit token at xt keeps its super-block scales, its 16-column sums and its 32-column sums. */
@inline function tok8Scales(xt: usize, K: i32): usize {
  return xt + <usize>K;
}

@inline function tok8Sums16(xt: usize, K: i32): usize {
  return tok8Scales(xt, K) + (<usize>K >> 6);
}

@inline function tok8Sums32(xt: usize, K: i32): usize {
  return tok8Sums16(xt, K) + (<usize>K >> 3);
}

/** x row [K] (K % 256 == 0) -> the 8-bit token at dst (layout above). */
function quantizeTok8(dst: usize, x: usize, K: i32): void {
  const XS = tok8Scales(dst, K), I16 = tok8Sums16(dst, K), I32 = tok8Sums32(dst, K);
  for (let b = 0; b < K; b += 256) {
    let m = f32x4.splat(0);
    for (let k = b; k < b + 256; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const xs: f32 = amax / 127;
    const inv = f32x4.splat(amax > 0 ? <f32>127 / amax : 0);
    store<f32>(XS + (<usize>b >> 6), xs);
    for (let k = b; k < b + 256; k += 16) {
      const p = x + (<usize>k << 2);
      const h0 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 16), inv))));
      const h1 = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 32), inv))), i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p, 48), inv))));
      v128.store(dst + <usize>k, i8x16.narrow_i16x8_s(h0, h1));
      const l = i32x4.extadd_pairwise_i16x8_s(i16x8.add(h0, h1));
      const isum = i32x4.extract_lane(l, 0) + i32x4.extract_lane(l, 1) + i32x4.extract_lane(l, 2) + i32x4.extract_lane(l, 3);
      store<i16>(I16 + (<usize>k >> 3), <i16>isum);
    }
    for (let k = b; k < b + 256; k += 32) store<i16>(I32 + (<usize>k >> 4), load<i16>(I16 + (<usize>k >> 3)) + load<i16>(I16 + (<usize>k >> 3), 2));
  }
}

/**
 * Two 16-column runs (u 0..31 each) summed in 16 bits (|.| <= 4 * 31 * 127), then each
 * lane pair times the sub-block's scale sc (0..63) and widened (i32x4.dot_i16x8_s): 4 i32 lanes.
 */
@inline function rdot32s(u0: v128, u1: v128, xo: usize, sc: i32): v128 {
  const p = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), u0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 16), u1));
  return i32x4.dot_i16x8_s(p, i16x8.splat(<i16>sc));
}

/** Q4_K / Q5_K mins on the 8-bit token, in integers: sum_s m[s] * (sum of X over sub-block s) (i16 sums at i32s), lanes to be summed. */
@inline function minsI(w: usize, i32s: usize): v128 {
  return i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(v128.load64_zero(w + 16)), v128.load(i32s));
}

/** Q4_K / Q5_K super-block at w against the 8-bit token's block (X at x, scale xs, i16 sums per 32 columns at i32s), added to acc. */
@inline function block45R(dt: i32, w: usize, x: usize, xs: f32, i32s: usize, acc: v128): v128 {
  const d = load<f32>(w);
  const qs = w + (dt == DT_Q4K ? 24 : 56);
  const m = i8x16.splat(0x0f), b5 = i8x16.splat(0x10);
  // Q5_K: bits 0 / 1 of each qh byte are the fifth bits of chunk c's low / high nibbles (shifted down 2 a chunk)
  let hb0 = dt == DT_Q5K ? v128.load(w + 24) : i8x16.splat(0);
  let hb1 = dt == DT_Q5K ? v128.load(w + 40) : i8x16.splat(0);
  let ia = i32x4.splat(0);
  for (let c = 0; c < 4; c++) {
    const o = <usize>c << 5;
    const q0 = v128.load(qs + o), q1 = v128.load(qs + o, 16);
    let l0 = v128.and(q0, m), l1 = v128.and(q1, m);
    let h0 = v128.and(i16x8.shr_u(q0, 4), m), h1 = v128.and(i16x8.shr_u(q1, 4), m);
    if (dt == DT_Q5K) {
      l0 = v128.or(l0, v128.and(i16x8.shl(hb0, 4), b5));
      l1 = v128.or(l1, v128.and(i16x8.shl(hb1, 4), b5));
      h0 = v128.or(h0, v128.and(i16x8.shl(hb0, 3), b5));
      h1 = v128.or(h1, v128.and(i16x8.shl(hb1, 3), b5));
      hb0 = i16x8.shr_u(hb0, 2);
      hb1 = i16x8.shr_u(hb1, 2);
    }
    const xo = x + (<usize>c << 6);
    // sum_s sc[s] * (u . X over sub-block s) in integers (sub-blocks 2c, 2c + 1), then d * xs once
    ia = i32x4.add(ia, rdot32s(l0, l1, xo, load<u8>(w + 8 + (o >> 4))));
    ia = i32x4.add(ia, rdot32s(h0, h1, xo + 32, load<u8>(w + 9 + (o >> 4))));
  }
  return fma(f32x4.convert_i32x4_s(minsI(w, i32s)), f32x4.splat(-load<f32>(w, 4) * xs), fma(f32x4.convert_i32x4_s(ia), f32x4.splat(d * xs), acc));
}

/** Lane i (a constant once inlined) of the i16x8 v in every lane. */
@inline function bcast16(v: v128, i: i32): v128 {
  if (i == 0) return v128.shuffle<i16>(v, v, 0, 0, 0, 0, 0, 0, 0, 0);
  if (i == 1) return v128.shuffle<i16>(v, v, 1, 1, 1, 1, 1, 1, 1, 1);
  if (i == 2) return v128.shuffle<i16>(v, v, 2, 2, 2, 2, 2, 2, 2, 2);
  if (i == 3) return v128.shuffle<i16>(v, v, 3, 3, 3, 3, 3, 3, 3, 3);
  if (i == 4) return v128.shuffle<i16>(v, v, 4, 4, 4, 4, 4, 4, 4, 4);
  if (i == 5) return v128.shuffle<i16>(v, v, 5, 5, 5, 5, 5, 5, 5, 5);
  if (i == 6) return v128.shuffle<i16>(v, v, 6, 6, 6, 6, 6, 6, 6, 6);
  return v128.shuffle<i16>(v, v, 7, 7, 7, 7, 7, 7, 7, 7);
}

/**
 * q6Group on the 8-bit token, in integers: the values u (0..63) go to the relaxed dot as
 * they are (pairs of products within 16 bits: 2 * 63 * 127), and i32x4.dot_i16x8_s
 * multiplies each pair sum by its sub-block's int8 scale (lanes of sc, the half's 8) and
 * widens in one step; added to the i32 accumulator ia.
 */
@inline function q6GroupR(w: usize, x: usize, h: i32, l0: i32, sc: v128, ia: v128): v128 {
  const ql = w + 20 + <usize>(64 * h + l0);
  const a = v128.load(ql), b = v128.load(ql, 32);
  const hb = v128.load(w + 148 + <usize>(32 * h + l0));
  const xo = x + <usize>(128 * h + l0);
  const j = l0 >> 4; // sub-block within the half: j + 2r
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), q6Quarter(a, b, hb, 0)), bcast16(sc, j)));
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 32), q6Quarter(a, b, hb, 1)), bcast16(sc, j + 2)));
  ia = i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 64), q6Quarter(a, b, hb, 2)), bcast16(sc, j + 4)));
  return i32x4.add(ia, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 96), q6Quarter(a, b, hb, 3)), bcast16(sc, j + 6)));
}

/** One row (super-blocks bs bytes apart) against an 8-bit token. */
@inline function rowDotR(dt: i32, w: usize, bs: usize, xt: usize, K: i32): f32 {
  const XS = tok8Scales(xt, K), I16 = tok8Sums16(xt, K), I32 = tok8Sums32(xt, K);
  let acc = f32x4.splat(0);
  for (let b = 0; b < (K >> 8); b++) {
    const wb = w + <usize>b * bs;
    const xs = load<f32>(XS + (<usize>b << 2));
    if (dt == DT_Q6K) acc = block6(wb, xt + (<usize>b << 8), acc, true, xs, I16 + (<usize>b << 5));
    else acc = block45R(dt, wb, xt + (<usize>b << 8), xs, I32 + (<usize>b << 4), acc);
  }
  return hsum(acc);
}

/** Q4_K / Q5_K: the 4 rows of a group against an 8-bit token. */
@inline function rowDot4R(dt: i32, w: usize, xt: usize, K: i32): v128 {
  const bb = blockBytes(dt);
  const XS = tok8Scales(xt, K), I32 = tok8Sums32(xt, K);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let b = 0; b < (K >> 8); b++) {
    const wb = w + <usize>b * 4 * bb;
    const xb = xt + (<usize>b << 8);
    const xs = load<f32>(XS + (<usize>b << 2));
    const sb = I32 + (<usize>b << 4);
    a0 = block45R(dt, wb, xb, xs, sb, a0);
    a1 = block45R(dt, wb + bb, xb, xs, sb, a1);
    a2 = block45R(dt, wb + 2 * bb, xb, xs, sb, a2);
    a3 = block45R(dt, wb + 3 * bb, xb, xs, sb, a3);
  }
  return hsum4(a0, a1, a2, a3);
}

/** matmulDots on the relaxed build: 8-bit tokens, no token scale left to apply. */
@inline function matmulDotsR(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok8(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K);
    for (let n = n0; n < n1; n += 4) {
      const w = rowAt(dt, q, K, n);
      const rows = min(4, n1 - n);
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        const o = out + ((<usize>t * <usize>N + <usize>n) << 2);
        if (rows == 4 && dt != DT_Q6K) {
          v128.store(o, f32x4.add(rowDot4R(dt, w, xt, K), bias ? v128.load(bias + (<usize>n << 2)) : f32x4.splat(0)));
          continue;
        }
        for (let r = 0; r < rows; r++) {
          const br: f32 = bias ? load<f32>(bias + (<usize>(n + r) << 2)) : 0;
          store<f32>(o + (<usize>r << 2), rowDotR(dt, rowAt(dt, q, K, n + r), blockStride(dt), xt, K) + br);
        }
      }
    }
  }
}

/** Few tokens: as many quantized x rows as scratch holds, then each row of the share against them (the row stays in L1 across tokens). */
@inline function matmulDots(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const tb = tokBytes(K);
  const per = max(1, scratchBytes / tb);
  for (let t0 = 0; t0 < T; t0 += per) {
    const t1 = min(T, t0 + per);
    for (let t = t0; t < t1; t++) quantizeTok(scratch + <usize>(t - t0) * <usize>tb, x + ((<usize>t * <usize>K) << 2), K, dt == DT_Q4K);
    // n0 is a multiple of 4 (shares are), and so is n1 unless it is N: groups of 4 rows, the last one partial
    for (let n = n0; n < n1; n += 4) {
      const w = rowAt(dt, q, K, n);
      const rows = min(4, n1 - n);
      const b = bias && rows == 4 ? v128.load(bias + (<usize>n << 2)) : f32x4.splat(0);
      for (let t = t0; t < t1; t++) {
        const xt = scratch + <usize>(t - t0) * <usize>tb;
        const o = out + ((<usize>t * <usize>N + <usize>n) << 2);
        if (rows == 4 && dt != DT_Q6K) {
          v128.store(o, fma(rowDot4(dt, w, xt, K), v128.load32_splat(xt), b));
          continue;
        }
        for (let r = 0; r < rows; r++) {
          const br: f32 = bias ? load<f32>(bias + (<usize>(n + r) << 2)) : 0;
          store<f32>(o + (<usize>r << 2), rowDot(dt, rowAt(dt, q, K, n + r), blockStride(dt), xt, K) * load<f32>(xt) + br);
        }
      }
    }
  }
}

function matmulDots4(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q4K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q4K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}
function matmulDots5(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q5K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q5K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}
function matmulDots6(scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) matmulDotsR(DT_Q6K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots(DT_Q6K, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}

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

function dequantRowsAny(dt: i32, dst: usize, q: usize, K: i32, n0: i32, n1: i32): void {
  if (dt == DT_Q4K) dequantRows(DT_Q4K, dst, q, K, n0, n1);
  else if (dt == DT_Q5K) dequantRows(DT_Q5K, dst, q, K, n0, n1);
  else dequantRows(DT_Q6K, dst, q, K, n0, n1);
}

/** Many tokens: row blocks dequantized into scratch, then the f32 tiles. */
function matmulDequant(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    dequantRowsAny(dt, scratch, q, K, nb, ne);
    // row n of the f32 view lives at scratch + (n - nb) * K * 4
    matmulRange(DT_F32, out, x, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne);
  }
}

/** This thread's share of out [T, N] = x [T, K] @ w^T, w a K-quant (dt DT_Q4K / DT_Q5K / DT_Q6K) in the kernel form, K % 256 == 0. */
export function matmulK(tid: i32, nth: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, dt: i32, bias: usize, T: i32, K: i32, N: i32): void {
  const act = activeThreads(N, nth, max(4, (1 << 16) / max(1, T * K)));
  const n0 = shareStart(N, tid, act, 4);
  const n1 = shareStart(N, tid + 1, act, 4);
  if (n0 >= n1) return;
  // a quantized token (2K + K/8 bytes) needs less scratch than a dequantized row (4K)
  if (scratchBytes < tokBytes(K)) unreachable(); // K past ~30000 columns at the default 64 KiB: a trap, not an overrun
  if (T >= PREFILL_T && scratchBytes >= K * 4) {
    matmulDequant(dt, scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  } else if (dt == DT_Q4K) matmulDots4(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else if (dt == DT_Q5K) matmulDots5(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
  else matmulDots6(scratch, scratchBytes, out, x, q, bias, T, K, N, n0, n1);
}

/** This thread's share of rows [n0, n1) of w as f32 into dst [n1 - n0, K]: the BLAS path's dequantization (../blas-matmul.ts). */
export function dequantRowsKShare(tid: i32, nth: i32, dst: usize, q: usize, dt: i32, K: i32, n0: i32, n1: i32): void {
  const rows = n1 - n0;
  const act = activeThreads(rows, nth, max(1, (1 << 15) / max(1, K)));
  const r0 = n0 + shareStart(rows, tid, act, 1);
  const r1 = n0 + shareStart(rows, tid + 1, act, 1);
  if (r0 >= r1) return;
  dequantRowsAny(dt, dst + ((<usize>(r0 - n0) * <usize>K) << 2), q, K, r0, r1);
}

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * K-quant decode with int16 activations (kquant.ts), the plain SIMD128 build's: a token
 * quantized to int16 with its 32-column sums, then per row (Q6_K) or 4-row group (Q4_K /
 * Q5_K) and token, integer dots per sub-block scaled in f32. The super-block kernels here
 * (q6Quarter, block6) also serve kquant-dots8.ts and kquant-dequant.ts.
 */
import { fma, hsum } from "./simd";
import { blockBytes, blockStride, rowAt, tokBytes, DT_Q4K, DT_Q5K, DT_Q6K } from "./kquant";
import { q6GroupR } from "./kquant-dots8";

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
@inline export function q6Quarter(a: v128, b: v128, hb: v128, r: i32): v128 {
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
@inline export function block6(w: usize, x: usize, acc: v128, eight: bool = false, xs: f32 = 0, i16: usize = 0): v128 {
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
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
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

/** Few tokens: as many quantized x rows as scratch holds, then each row of the share against them (the row stays in L1 across tokens). */
@inline export function matmulDots(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, q: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
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

// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * out [T, N] = x [T, K] @ w [N, K]^T (+ bias [N]), weights row-major in f32, bf16 or fp16.
 *
 * Dot-product form over the stored rows: the weight layout needs no repacking and one
 * kernel serves decode (T = 1: one weight row at a time, one sequential stream, 8
 * accumulators), a few tokens (2 .. 11: each row read once and decoded once for a group of
 * up to 3 tokens) and prefill (8+ tokens: row blocks widened to f32 in scratch, then 4-token x
 * 2-row register tiles over them, each weight vector used 4 times). Threads split the N rows;
 * rows are walked in blocks that stay in L2 while every token group passes over them, so
 * each weight is read from DRAM once per step.
 *
 * fp16 weights under 8 tokens run as DT_F16S: the activations are scaled by a power of two
 * into scratch once per call, so 4 weights decode with two integer ops and no multiply
 * (SIMD128 has no fp16 conversion; the generic decode, simd.ts f16LanesToF32, takes 4).
 *
 * Column blocks (`kc` > 0, layout.ts inColBlocks): a long-row 16-bit matrix is stored as
 * ceil(K / kc) row-major matrices [N, kc] (the last one narrower), block after block. One
 * token then reads x a block (8 KB) at a time while the weights stay one sequential
 * stream; over whole rows, x (K * 4 bytes, 22 KB at K = 5632) and the streaming weights
 * overflow L1 and x is fetched again every row (DRAM-cold decode 1.4x slower at K = 5632).
 * Under 8 tokens each block's rows are read in place and added into out; 8+ widen a block's rows to f32.
 */
import { dtBytes, fma, hmax, hsum, shareStart, activeThreads, rawHi, rawLo, wAt, wHi, wLo, DT_BF16, DT_F16, DT_F16S, DT_F32 } from "./simd";

/** Bytes of weight rows per block: the block stays in L2 while every group of 4 tokens passes over it. */
const BLOCK_BYTES: i32 = 256 << 10;
/** Under this many tokens, rowsSeqFew (groups of 3, then 1 or 2, over one weight stream; from 8 tokens over f32 rows widened in scratch); from it, 4-token tiles. */
const FEW_MAX: i32 = 12;

/**
 * DT_F16S weights decode as value * 2^-112, so their activations are scaled by 2^s (max|x|
 * lands in [2^62, 2^63): every product of it with an fp16 weight, subnormals included, is
 * a normal float) and each finished dot product by 2^(112 - s). Powers of two: exact.
 * Set per call by scaleActivations; each thread's instance has its own globals.
 */
let f16sOutScale: f32 = 1;
/** From this max|x| on (or NaN), the unscaled fp16 path runs: s would be under 3. */
const X_LIMIT: f32 = 1.152921504606847e18; // 2^60

/** 2^e as f32, for e in [-126, 127]. */
@inline function pow2(e: i32): f32 {
  return reinterpret<f32>((e + 127) << 23);
}

/** A finished dot product in true units (DT_F16S sums carry the activations' scale). */
@inline function unscale(dt: i32, s: f32): f32 {
  return dt == DT_F16S ? s * f16sOutScale : s;
}

/** Scalar tail k in [k0, K) of dot(x row, w row). */
@inline function tail(dt: i32, x: usize, w: usize, k0: i32, K: i32): f32 {
  let s: f32 = 0;
  for (let k = k0; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * wAt(dt, w + <usize>k * dtBytes(dt));
  return s;
}

/** Stores v at o, or adds it to what is there (acc: a column block after the first). */
@inline function put(o: usize, v: f32, acc: bool): void {
  store<f32>(o, acc ? load<f32>(o) + v : v);
}

/** out[n..n+4) for one token: 4 weight rows against x. */
@inline function rows4(dt: i32, x: usize, w: usize, out: usize, bias: usize, K: i32, n: i32, acc: bool): void {
  const rb = <usize>K * dtBytes(dt);
  const w0 = w + <usize>n * rb;
  const w1 = w0 + rb;
  const w2 = w1 + rb;
  const w3 = w2 + rb;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
  let a2 = f32x4.splat(0), b2 = f32x4.splat(0);
  let a3 = f32x4.splat(0), b3 = f32x4.splat(0);
  const K8 = K & ~7;
  for (let k = 0; k < K8; k += 8) {
    const xo = x + (<usize>k << 2);
    const xl = v128.load(xo);
    const xh = v128.load(xo, 16);
    const wo = <usize>k * dtBytes(dt);
    a0 = fma(xl, wLo(dt, w0 + wo), a0);
    b0 = fma(xh, wHi(dt, w0 + wo), b0);
    a1 = fma(xl, wLo(dt, w1 + wo), a1);
    b1 = fma(xh, wHi(dt, w1 + wo), b1);
    a2 = fma(xl, wLo(dt, w2 + wo), a2);
    b2 = fma(xh, wHi(dt, w2 + wo), b2);
    a3 = fma(xl, wLo(dt, w3 + wo), a3);
    b3 = fma(xh, wHi(dt, w3 + wo), b3);
  }
  const o = out + (<usize>n << 2);
  const bb = bias + (<usize>n << 2);
  put(o, unscale(dt, hsum(f32x4.add(a0, b0)) + tail(dt, x, w0, K8, K)) + (bias ? load<f32>(bb) : 0), acc);
  put(o + 4, unscale(dt, hsum(f32x4.add(a1, b1)) + tail(dt, x, w1, K8, K)) + (bias ? load<f32>(bb, 4) : 0), acc);
  put(o + 8, unscale(dt, hsum(f32x4.add(a2, b2)) + tail(dt, x, w2, K8, K)) + (bias ? load<f32>(bb, 8) : 0), acc);
  put(o + 12, unscale(dt, hsum(f32x4.add(a3, b3)) + tail(dt, x, w3, K8, K)) + (bias ? load<f32>(bb, 12) : 0), acc);
}

/** out[n] for one token: one weight row against x. */
@inline function rows1(dt: i32, x: usize, w: usize, out: usize, bias: usize, K: i32, n: i32, acc: bool): void {
  const w0 = w + <usize>n * <usize>K * dtBytes(dt);
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
  const K8 = K & ~7;
  for (let k = 0; k < K8; k += 8) {
    const xo = x + (<usize>k << 2);
    const wo = w0 + <usize>k * dtBytes(dt);
    a0 = fma(v128.load(xo), wLo(dt, wo), a0);
    b0 = fma(v128.load(xo, 16), wHi(dt, wo), b0);
  }
  put(out + (<usize>n << 2), unscale(dt, hsum(f32x4.add(a0, b0)) + tail(dt, x, w0, K8, K)) + (bias ? load<f32>(bias + (<usize>n << 2)) : 0), acc);
}

/**
 * dot(x, one weight row) over K columns (DT_F16S: in the scaled units), 32 columns a pass
 * into 8 accumulators: enough independent FMAs to hide their latency behind the weight
 * decode (bf16 and fp16 ran ~20% faster than with 4).
 */
@inline function dotRow(dt: i32, x: usize, wr: usize, K: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  const B = 8 * dtBytes(dt); // bytes of 8 weights
  const K32 = K & ~31;
  let k = 0;
  for (; k < K32; k += 32) {
    const xo = x + (<usize>k << 2);
    const wo = wr + <usize>k * dtBytes(dt);
    if (dt == DT_BF16) {
      // one load serves both halves of 8 weights
      const r0 = v128.load(wo), r1 = v128.load(wo, 16), r2 = v128.load(wo, 32), r3 = v128.load(wo, 48);
      a0 = fma(v128.load(xo), rawLo(dt, r0), a0);
      a1 = fma(v128.load(xo, 16), rawHi(dt, r0), a1);
      a2 = fma(v128.load(xo, 32), rawLo(dt, r1), a2);
      a3 = fma(v128.load(xo, 48), rawHi(dt, r1), a3);
      a4 = fma(v128.load(xo, 64), rawLo(dt, r2), a4);
      a5 = fma(v128.load(xo, 80), rawHi(dt, r2), a5);
      a6 = fma(v128.load(xo, 96), rawLo(dt, r3), a6);
      a7 = fma(v128.load(xo, 112), rawHi(dt, r3), a7);
    } else {
      a0 = fma(v128.load(xo), wLo(dt, wo), a0);
      a1 = fma(v128.load(xo, 16), wHi(dt, wo), a1);
      a2 = fma(v128.load(xo, 32), wLo(dt, wo + B), a2);
      a3 = fma(v128.load(xo, 48), wHi(dt, wo + B), a3);
      a4 = fma(v128.load(xo, 64), wLo(dt, wo + 2 * B), a4);
      a5 = fma(v128.load(xo, 80), wHi(dt, wo + 2 * B), a5);
      a6 = fma(v128.load(xo, 96), wLo(dt, wo + 3 * B), a6);
      a7 = fma(v128.load(xo, 112), wHi(dt, wo + 3 * B), a7);
    }
  }
  for (; k + 8 <= K; k += 8) {
    const xo = x + (<usize>k << 2);
    const wo = wr + <usize>k * dtBytes(dt);
    a0 = fma(v128.load(xo), wLo(dt, wo), a0);
    a1 = fma(v128.load(xo, 16), wHi(dt, wo), a1);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return hsum(s) + tail(dt, x, wr, k, K);
}

/**
 * out[n0..n1) for one token, one row at a time: the weights are read as one sequential
 * stream (4 rows side by side are 4 short streams, which DRAM prefetchers follow worse).
 */
@inline function rowsSeq(dt: i32, x: usize, w: usize, out: usize, bias: usize, K: i32, n0: i32, n1: i32, acc: bool = false): void {
  const rb = <usize>K * dtBytes(dt);
  for (let n = n0; n < n1; n++) {
    const s = unscale(dt, dotRow(dt, x, w + <usize>n * rb, K));
    put(out + (<usize>n << 2), s + (bias ? load<f32>(bias + (<usize>n << 2)) : 0), acc);
  }
}

/** The 8 weights at p as f32: lo (0..3) and hi (4..7); one load serves both for 16-bit rows. */
@inline function w8lo(dt: i32, p: usize, raw: v128): v128 {
  return dt == DT_BF16 ? rawLo(dt, raw) : wLo(dt, p);
}
@inline function w8hi(dt: i32, p: usize, raw: v128): v128 {
  return dt == DT_BF16 ? rawHi(dt, raw) : wHi(dt, p);
}

/**
 * out[t, n0..n1) for 2 tokens (rowsSeq3: 3; x rows xs bytes apart, out rows os), one weight row
 * at a time: each row is read once, as one sequential stream (rowsSeq), and decoded once for
 * both tokens, 8 columns a pass. Over 4 rows side by side (rows4) each token took a pass
 * over the weights at half rowsSeq's speed: 2 tokens cost 4x one token. (16 columns a pass
 * for 2 tokens, or 4 tokens a pass, spilled the accumulators in V8 and ran slower.)
 */
@inline function rowsSeq2(dt: i32, x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, K: i32, n0: i32, n1: i32, acc: bool): void {
  const rb = <usize>K * dtBytes(dt);
  const K8 = K & ~7;
  for (let n = n0; n < n1; n++) {
    const wr = w + <usize>n * rb;
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
    let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    for (let k = 0; k < K8; k += 8) {
      const wo = wr + <usize>k * dtBytes(dt);
      const r = dt == DT_BF16 ? v128.load(wo) : f32x4.splat(0);
      const wl = w8lo(dt, wo, r), wh = w8hi(dt, wo, r);
      const x0 = x + (<usize>k << 2);
      a0 = fma(v128.load(x0), wl, a0);
      b0 = fma(v128.load(x0, 16), wh, b0);
      a1 = fma(v128.load(x0 + xs), wl, a1);
      b1 = fma(v128.load(x0 + xs, 16), wh, b1);
    }
    const bn: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
    const o = out + (<usize>n << 2);
    put(o, unscale(dt, hsum(f32x4.add(a0, b0)) + tail(dt, x, wr, K8, K)) + bn, acc);
    put(o + os, unscale(dt, hsum(f32x4.add(a1, b1)) + tail(dt, x + xs, wr, K8, K)) + bn, acc);
  }
}

/** rowsSeq2 for 3 tokens (its own body: binaryen merged one body with G a constant back into a loop test). */
@inline function rowsSeq3(dt: i32, x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, K: i32, n0: i32, n1: i32, acc: bool): void {
  const rb = <usize>K * dtBytes(dt);
  const K8 = K & ~7;
  const x2s = xs << 1;
  for (let n = n0; n < n1; n++) {
    const wr = w + <usize>n * rb;
    let a0 = f32x4.splat(0), b0 = f32x4.splat(0);
    let a1 = f32x4.splat(0), b1 = f32x4.splat(0);
    let a2 = f32x4.splat(0), b2 = f32x4.splat(0);
    for (let k = 0; k < K8; k += 8) {
      const wo = wr + <usize>k * dtBytes(dt);
      const r = dt == DT_BF16 ? v128.load(wo) : f32x4.splat(0);
      const wl = w8lo(dt, wo, r), wh = w8hi(dt, wo, r);
      const x0 = x + (<usize>k << 2);
      a0 = fma(v128.load(x0), wl, a0);
      b0 = fma(v128.load(x0, 16), wh, b0);
      a1 = fma(v128.load(x0 + xs), wl, a1);
      b1 = fma(v128.load(x0 + xs, 16), wh, b1);
      a2 = fma(v128.load(x0 + x2s), wl, a2);
      b2 = fma(v128.load(x0 + x2s, 16), wh, b2);
    }
    const bn: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
    const o = out + (<usize>n << 2);
    put(o, unscale(dt, hsum(f32x4.add(a0, b0)) + tail(dt, x, wr, K8, K)) + bn, acc);
    put(o + os, unscale(dt, hsum(f32x4.add(a1, b1)) + tail(dt, x + xs, wr, K8, K)) + bn, acc);
    put(o + (os << 1), unscale(dt, hsum(f32x4.add(a2, b2)) + tail(dt, x + x2s, wr, K8, K)) + bn, acc);
  }
}

/**
 * 2 .. 11 tokens as groups of 3, then the 1 or 2 left (4: 3 + 1, 7: 3 + 3 + 1), each group
 * one pass over the rows: a group of 3 costs about what a group of 2 does (both latency-bound)
 * and one token's pass (eight chains) under half of it, so 4 = 3 + 1 beat 2 + 2 by ~25%.
 */
@inline function rowsSeqFew(dt: i32, x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, T: i32, K: i32, n0: i32, n1: i32, acc: bool): void {
  let t = 0;
  while (t < T) {
    const g = min(3, T - t);
    const xt = x + <usize>t * xs, ot = out + <usize>t * os;
    if (g == 3) rowsSeq3(dt, xt, xs, w, ot, os, bias, K, n0, n1, acc);
    else if (g == 2) rowsSeq2(dt, xt, xs, w, ot, os, bias, K, n0, n1, acc);
    else rowsSeq(dt, xt, w, ot, bias, K, n0, n1, acc);
    t += g;
  }
}
// one function a dtype, out of matmulRange: inlined there, V8 spilled their accumulators
function fewF32(x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, T: i32, K: i32, n0: i32, n1: i32, acc: bool): void {
  rowsSeqFew(DT_F32, x, xs, w, out, os, bias, T, K, n0, n1, acc);
}
function fewBf16(x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, T: i32, K: i32, n0: i32, n1: i32, acc: bool): void {
  rowsSeqFew(DT_BF16, x, xs, w, out, os, bias, T, K, n0, n1, acc);
}
function fewF16(x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, T: i32, K: i32, n0: i32, n1: i32, acc: bool): void {
  rowsSeqFew(DT_F16, x, xs, w, out, os, bias, T, K, n0, n1, acc);
}
function fewF16S(x: usize, xs: usize, w: usize, out: usize, os: usize, bias: usize, T: i32, K: i32, n0: i32, n1: i32, acc: bool): void {
  rowsSeqFew(DT_F16S, x, xs, w, out, os, bias, T, K, n0, n1, acc);
}

/** out[t..t+4, n..n+2) (= or +=): 4 tokens x 2 weight rows; xs bytes between token rows, os = N * 4 between output rows. */
@inline function tile4x2(dt: i32, x: usize, w: usize, out: usize, bias: usize, K: i32, N: i32, n: i32, xs: usize, acc: bool): void {
  const rb = <usize>K * dtBytes(dt);
  const w0 = w + <usize>n * rb;
  const w1 = w0 + rb;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const K8 = K & ~7;
  for (let k = 0; k < K8; k += 8) {
    const wo = <usize>k * dtBytes(dt);
    const w0l = wLo(dt, w0 + wo), w0h = wHi(dt, w0 + wo);
    const w1l = wLo(dt, w1 + wo), w1h = wHi(dt, w1 + wo);
    let xp = x + (<usize>k << 2);
    let xl = v128.load(xp), xh = v128.load(xp, 16);
    c00 = fma(xh, w0h, fma(xl, w0l, c00));
    c01 = fma(xh, w1h, fma(xl, w1l, c01));
    xp += xs;
    xl = v128.load(xp); xh = v128.load(xp, 16);
    c10 = fma(xh, w0h, fma(xl, w0l, c10));
    c11 = fma(xh, w1h, fma(xl, w1l, c11));
    xp += xs;
    xl = v128.load(xp); xh = v128.load(xp, 16);
    c20 = fma(xh, w0h, fma(xl, w0l, c20));
    c21 = fma(xh, w1h, fma(xl, w1l, c21));
    xp += xs;
    xl = v128.load(xp); xh = v128.load(xp, 16);
    c30 = fma(xh, w0h, fma(xl, w0l, c30));
    c31 = fma(xh, w1h, fma(xl, w1l, c31));
  }
  const bn0: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
  const bn1: f32 = bias ? load<f32>(bias + (<usize>n << 2), 4) : 0;
  const os = <usize>N << 2;
  let o = out + (<usize>n << 2);
  let xr = x;
  put(o, unscale(dt, hsum(c00) + tail(dt, xr, w0, K8, K)) + bn0, acc);
  put(o + 4, unscale(dt, hsum(c01) + tail(dt, xr, w1, K8, K)) + bn1, acc);
  o += os; xr += xs;
  put(o, unscale(dt, hsum(c10) + tail(dt, xr, w0, K8, K)) + bn0, acc);
  put(o + 4, unscale(dt, hsum(c11) + tail(dt, xr, w1, K8, K)) + bn1, acc);
  o += os; xr += xs;
  put(o, unscale(dt, hsum(c20) + tail(dt, xr, w0, K8, K)) + bn0, acc);
  put(o + 4, unscale(dt, hsum(c21) + tail(dt, xr, w1, K8, K)) + bn1, acc);
  o += os; xr += xs;
  put(o, unscale(dt, hsum(c30) + tail(dt, xr, w0, K8, K)) + bn0, acc);
  put(o + 4, unscale(dt, hsum(c31) + tail(dt, xr, w1, K8, K)) + bn1, acc);
}

/**
 * Rows [n0, n1) of out for every token, weights of one dtype (inlined per dtype); x's token
 * rows xs bytes apart (0: K * 4), out stored or (acc) added to.
 */
@inline export function matmulRange(dt: i32, out: usize, x: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, xs0: usize = 0, acc: bool = false): void {
  const xs = xs0 ? xs0 : <usize>K << 2;
  const os = <usize>N << 2;
  const T4 = T & ~3;
  if (T == 1 && (SEQ_T1 || dt == DT_F16S)) {
    rowsSeq(dt, x, w, out, bias, K, n0, n1, acc);
    return;
  }
  if (T < FEW_MAX && (SEQ_T1 || dt == DT_F16S)) {
    if (dt == DT_F32) fewF32(x, xs, w, out, os, bias, T, K, n0, n1, acc);
    else if (dt == DT_BF16) fewBf16(x, xs, w, out, os, bias, T, K, n0, n1, acc);
    else if (dt == DT_F16) fewF16(x, xs, w, out, os, bias, T, K, n0, n1, acc);
    else fewF16S(x, xs, w, out, os, bias, T, K, n0, n1, acc);
    return;
  }
  // bigger blocks mean fewer passes over x (each block re-reads all of it)
  const rowBlock = max(4, min(256, (BLOCK_BYTES / (K * <i32>dtBytes(dt))) & ~3));
  for (let nb = n0; nb < n1; nb += rowBlock) {
    const ne = min(nb + rowBlock, n1);
    // groups of 4 tokens over the block's rows, 2 rows at a time
    for (let t = 0; t < T4; t += 4) {
      const xt = x + <usize>t * xs;
      const ot = out + <usize>t * os;
      let n = nb;
      for (; n + 2 <= ne; n += 2) tile4x2(dt, xt, w, ot, bias, K, N, n, xs, acc);
      for (; n < ne; n++) for (let u = 0; u < 4; u++) rows1(dt, xt + <usize>u * xs, w, ot + <usize>u * os, bias, K, n, acc);
    }
    // leftover tokens (all of them when T < 4) one at a time, 4 rows per pass
    for (let t = T4; t < T; t++) {
      const xt = x + <usize>t * xs;
      const ot = out + <usize>t * os;
      let n = nb;
      for (; n + 4 <= ne; n += 4) rows4(dt, xt, w, ot, bias, K, n, acc);
      for (; n < ne; n++) rows1(dt, xt, w, ot, bias, K, n, acc);
    }
  }
}

/**
 * Widens rows [n0, n1) of w [N, K] (stored in dt; in column blocks of kc when 0 < kc < K)
 * into f32 at dst: [n1 - n0, K] row-major, reading w as one stream (one per block).
 */
@inline export function widenRows(dt: i32, dst: usize, w: usize, K: i32, N: i32, kc: i32, n0: i32, n1: i32): void {
  if (kc <= 0 || kc >= K) {
    widenSpan(dt, dst, w + <usize>n0 * <usize>K * dtBytes(dt), (n1 - n0) * K);
    return;
  }
  let block = w;
  for (let k0 = 0; k0 < K; k0 += kc) {
    const kl = min(kc, K - k0);
    const rb = <usize>kl * dtBytes(dt);
    for (let n = n0; n < n1; n++) widenSpan(dt, dst + ((<usize>(n - n0) * <usize>K + <usize>k0) << 2), block + <usize>n * rb, kl);
    block += <usize>N * rb;
  }
}

/** n consecutive values at src (stored in dt) -> f32 at dst. */
@inline function widenSpan(dt: i32, dst: usize, src: usize, n: i32): void {
  if (dt == DT_F32) {
    memory.copy(dst, src, <usize>n << 2);
    return;
  }
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    v128.store(dst + (<usize>i << 2), wLo(dt, src + <usize>i * dtBytes(dt)));
    v128.store(dst + (<usize>i << 2), wHi(dt, src + <usize>i * dtBytes(dt)), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), wAt(dt, src + <usize>i * dtBytes(dt)));
}

/**
 * Many tokens: each row block is first brought into scratch as f32 with one sequential
 * pass (DRAM prefetchers follow one stream well, the tiles' two-row pattern badly; fp16
 * is widened once, not once per tile, and its subnormals stay out of the float multiply),
 * then the f32 tiles run over it from L2.
 */
function matmulBlocked(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  const rows = max(1, min(256, scratchBytes / (K * 4)));
  const rb = <usize>K * dtBytes(dt);
  for (let nb = n0; nb < n1; nb += rows) {
    const ne = min(nb + rows, n1);
    if (dt == DT_F32) widenSpan(DT_F32, scratch, w + <usize>nb * rb, (ne - nb) * K);
    else if (dt == DT_BF16) widenSpan(DT_BF16, scratch, w + <usize>nb * rb, (ne - nb) * K);
    else widenSpan(DT_F16, scratch, w + <usize>nb * rb, (ne - nb) * K);
    // row n of the f32 view lives at scratch + (n - nb) * K * 4
    tilesF32(out, x, <usize>K << 2, scratch - <usize>nb * <usize>K * 4, bias, T, K, N, nb, ne, false);
  }
}

/**
 * Tokens over a column-blocked w (see the header), block by block: each block's rows are
 * widened to f32 in scratch a row block at a time (one sequential stream), then the f32
 * tiles add the block's columns into out (the first block stores, with the bias).
 */
function matmulBlockedCols(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, kc: i32, n0: i32, n1: i32): void {
  let block = w;
  for (let k0 = 0; k0 < K; k0 += kc) {
    const kl = min(kc, K - k0);
    const rb = <usize>kl * dtBytes(dt);
    const rows = max(1, min(256, scratchBytes / (kl * 4)));
    for (let nb = n0; nb < n1; nb += rows) {
      const ne = min(nb + rows, n1);
      if (dt == DT_BF16) widenSpan(DT_BF16, scratch, block + <usize>nb * rb, (ne - nb) * kl);
      else widenSpan(DT_F16, scratch, block + <usize>nb * rb, (ne - nb) * kl);
      // row n of the f32 view lives at scratch + (n - nb) * kl * 4
      tilesF32(out, x + (<usize>k0 << 2), <usize>K << 2, scratch - <usize>nb * <usize>kl * 4, k0 == 0 ? bias : 0, T, kl, N, nb, ne, k0 > 0);
    }
    block += <usize>N * rb;
  }
}

/**
 * 1 .. 7 tokens over a column-blocked w: each block's rows read in place (as matmulRange
 * reads row-major ones: one token, each block's rows one stream against its 8 KB of x), its
 * columns added into out (fp16: against the scaled activations). Each block is a call of
 * its own: the row loop inlined into this block loop ran 1.4x slower in V8.
 */
function matmulColsInPlace(dt: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, kc: i32, n0: i32, n1: i32): void {
  const scaled = dt == DT_F16 && <usize>T * <usize>K * 4 <= <usize>scratchBytes && scaleActivations(scratch, x, T, K);
  const xx = scaled ? scratch : x;
  let block = w;
  for (let k0 = 0; k0 < K; k0 += kc) {
    const kl = min(kc, K - k0);
    const xk = xx + (<usize>k0 << 2);
    const b = k0 == 0 ? bias : 0;
    if (dt == DT_BF16) tilesBf16(out, xk, <usize>K << 2, block, b, T, kl, N, n0, n1, k0 > 0);
    else if (scaled) tilesF16S(out, xk, <usize>K << 2, block, b, T, kl, N, n0, n1, k0 > 0);
    else tilesF16(out, xk, <usize>K << 2, block, b, T, kl, N, n0, n1, k0 > 0);
    block += <usize>N * <usize>kl * dtBytes(dt);
  }
}

// matmulRange, one function a dtype: inlined into one big matmul, V8 compiled every path slower (up to 2x)
function tilesF32(out: usize, x: usize, xs: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, acc: bool): void {
  matmulRange(DT_F32, out, x, w, bias, T, K, N, n0, n1, xs, acc);
}
function tilesBf16(out: usize, x: usize, xs: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, acc: bool): void {
  matmulRange(DT_BF16, out, x, w, bias, T, K, N, n0, n1, xs, acc);
}
function tilesF16(out: usize, x: usize, xs: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, acc: bool): void {
  matmulRange(DT_F16, out, x, w, bias, T, K, N, n0, n1, xs, acc);
}
function tilesF16S(out: usize, x: usize, xs: usize, w: usize, bias: usize, T: i32, K: i32, N: i32, n0: i32, n1: i32, acc: bool): void {
  matmulRange(DT_F16S, out, x, w, bias, T, K, N, n0, n1, xs, acc);
}

/** max |x[i]| over n values; NaN when any is NaN. */
function maxAbs(x: usize, n: i32): f32 {
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>i << 2))));
  let s = hmax(m);
  for (; i < n; i++) s = max(s, abs(load<f32>(x + (<usize>i << 2))));
  return s;
}

/**
 * x [T, K] * 2^s into dst for the DT_F16S kernels (see f16sOutScale), each full 8-column
 * block stored as [even columns, odd columns], the order those kernels decode fp16
 * halves in. False, writing nothing, when some |x| >= 2^60 or is NaN.
 */
function scaleActivations(dst: usize, x: usize, T: i32, K: i32): bool {
  const m = maxAbs(x, T * K);
  if (!(m < X_LIMIT)) return false;
  const e = <i32>(reinterpret<u32>(m) >> 23) - 127; // m in [2^e, 2^(e+1)); zero or subnormal: -127
  const s = min(127, 62 - e);
  f16sOutScale = pow2(112 - s);
  const scale = pow2(s);
  const sv = f32x4.splat(scale);
  const K8 = K & ~7;
  for (let t = 0; t < T; t++) {
    const xr = x + ((<usize>t * <usize>K) << 2);
    const dr = dst + ((<usize>t * <usize>K) << 2);
    for (let k = 0; k < K8; k += 8) {
      const lo = v128.load(xr + (<usize>k << 2));
      const hi = v128.load(xr + (<usize>k << 2), 16);
      v128.store(dr + (<usize>k << 2), f32x4.mul(v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), sv));
      v128.store(dr + (<usize>k << 2), f32x4.mul(v128.shuffle<f32>(lo, hi, 1, 3, 5, 7), sv), 16);
    }
    for (let k = K8; k < K; k++) store<f32>(dr + (<usize>k << 2), load<f32>(xr + (<usize>k << 2)) * scale);
  }
  return true;
}

let SEQ_T1 = true;
let BLOCKED_ALL = true;
/** Selects whether f32/bf16 matmuls of 8+ tokens stage row blocks in scratch (fp16 always does); for benchmarks. */
export function matmulStaged(on: i32): void {
  BLOCKED_ALL = on != 0;
}

/** Selects the one-token kernel (1: one sequential row stream, 0: four rows side by side); for benchmarks. */
export function matvecSequential(on: i32): void {
  SEQ_T1 = on != 0;
}

/**
 * This thread's share of out [T, N] = x [T, K] @ w [N, K]^T (+ bias; 0 = none); kc > 0:
 * w in column blocks of kc (see the header; the caller's scratch holds 4 rows of K).
 */
export function matmul(tid: i32, nth: i32, scratch: usize, scratchBytes: i32, out: usize, x: usize, w: usize, dt: i32, bias: usize, T: i32, K: i32, N: i32, kc: i32): void {
  // enough rows per thread that waking it pays: about 64K multiply-adds
  const act = activeThreads(N, nth, max(4, (1 << 16) / max(1, T * K)));
  const n0 = shareStart(N, tid, act, 4);
  const n1 = shareStart(N, tid + 1, act, 4);
  if (n0 >= n1) return;
  if (kc > 0 && kc < K) {
    if (T >= 8) matmulBlockedCols(dt, scratch, scratchBytes, out, x, w, bias, T, K, N, kc, n0, n1);
    else matmulColsInPlace(dt, scratch, scratchBytes, out, x, w, bias, T, K, N, kc, n0, n1);
    return;
  }
  if (T >= 8 && scratchBytes >= K * 16 && (BLOCKED_ALL || dt == DT_F16)) {
    matmulBlocked(dt, scratch, scratchBytes, out, x, w, bias, T, K, N, n0, n1);
    return;
  }
  if (dt == DT_F16 && <usize>T * <usize>K * 4 <= <usize>scratchBytes && scaleActivations(scratch, x, T, K)) {
    tilesF16S(out, scratch, <usize>K << 2, w, bias, T, K, N, n0, n1, false);
    return;
  }
  if (dt == DT_F32) tilesF32(out, x, <usize>K << 2, w, bias, T, K, N, n0, n1, false);
  else if (dt == DT_BF16) tilesBf16(out, x, <usize>K << 2, w, bias, T, K, N, n0, n1, false);
  else tilesF16(out, x, <usize>K << 2, w, bias, T, K, N, n0, n1, false);
}

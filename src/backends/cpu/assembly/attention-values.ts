// @ts-nocheck AssemblyScript (compiled by asc, not tsc)
/**
 * Attention's p.v side (attention.ts): a key block's values accumulated into the rows'
 * unnormalised outputs O, one row at a time (24 or 16 outputs in registers across the keys;
 * 16-bit caches widened in registers) or two rows sharing each value load, and scaleRow,
 * which rescales an O row (the softmax step's correction, the final 1 / l).
 */
import { fma, rawHi, rawLo, DT_BF16, DT_F16 } from "./simd";
import { kvAxpy } from "./kv";
import { krow, rowHi, rowLo, rowO, rowS } from "./attention-scratch";
import { gDt, gHd } from "./attention";

/** O[r] += sum_j p[r, j] v_j over the visible keys of the block, for rows [r0, r1). */
export function accumulateBlock(sc: usize, r0: i32, r1: i32, raw: bool): void {
  let r = r0;
  for (; !raw && r + 2 <= r1; r += 2) {
    const lo0 = rowLo(sc, r), hi0 = rowHi(sc, r), lo1 = rowLo(sc, r + 1), hi1 = rowHi(sc, r + 1);
    const c0 = max(lo0, lo1), c1 = max(c0, min(hi0, hi1));
    accumulatePair(sc, r, c0, c1);
    accumulateRange(sc, r, lo0, c0);
    accumulateRange(sc, r, c1, hi0);
    accumulateRange(sc, r + 1, lo1, c0);
    accumulateRange(sc, r + 1, c1, hi1);
  }
  for (; r < r1; r++) {
    if (raw) {
      if (gDt == DT_BF16) accumulateRaw(DT_BF16, sc, r, rowLo(sc, r), rowHi(sc, r));
      else if (gDt == DT_F16) accumulateRaw(DT_F16, sc, r, rowLo(sc, r), rowHi(sc, r));
      else {
        const o = rowO(sc, r), sr = rowS(sc, r);
        for (let jj = rowLo(sc, r); jj < rowHi(sc, r); jj++) kvAxpy(gDt, o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), gHd);
      }
    } else {
      accumulateRange(sc, r, rowLo(sc, r), rowHi(sc, r));
    }
  }
}

/** O[r] += p[r, j] v_j over block keys [a, b); 16 outputs stay in registers across the keys. */
function accumulateRange(sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o = rowO(sc, r), sr = rowS(sc, r);
  let d = 0;
  // 24 outputs a pass: six FMA chains across the keys. Eight would spill: V8 loads all of a
  // pass's values before its FMAs, so accumulators + values must fit 16 registers.
  for (; d + 24 <= hd; d += 24) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    let y4 = v128.load(od, 64), y5 = v128.load(od, 80);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      y0 = fma(p, v128.load(v), y0);
      y1 = fma(p, v128.load(v, 16), y1);
      y2 = fma(p, v128.load(v, 32), y2);
      y3 = fma(p, v128.load(v, 48), y3);
      y4 = fma(p, v128.load(v, 64), y4);
      y5 = fma(p, v128.load(v, 80), y5);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
    v128.store(od, y4, 64);
    v128.store(od, y5, 80);
  }
  for (; d + 16 <= hd; d += 16) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      y0 = fma(p, v128.load(v), y0);
      y1 = fma(p, v128.load(v, 16), y1);
      y2 = fma(p, v128.load(v, 32), y2);
      y3 = fma(p, v128.load(v, 48), y3);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
  }
  if (d < hd) for (let jj = a; jj < b; jj++) axpyTail(o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), d, hd);
}

/** O[r] and O[r + 1] += their p times v_j over block keys [a, b): each value row loaded once for both. */
function accumulatePair(sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o0 = rowO(sc, r), o1 = rowO(sc, r + 1);
  const s0 = rowS(sc, r), s1 = rowS(sc, r + 1);
  let d = 0;
  for (; d + 16 <= hd; d += 16) {
    const od0 = o0 + (<usize>d << 2), od1 = o1 + (<usize>d << 2);
    let y0 = v128.load(od0), y1 = v128.load(od0, 16), y2 = v128.load(od0, 32), y3 = v128.load(od0, 48);
    let z0 = v128.load(od1), z1 = v128.load(od1, 16), z2 = v128.load(od1, 32), z3 = v128.load(od1, 48);
    for (let jj = a; jj < b; jj++) {
      const p = v128.load32_splat(s0 + (<usize>jj << 2));
      const q = v128.load32_splat(s1 + (<usize>jj << 2));
      const v = krow(sc, jj) + (<usize>d << 2);
      const v0 = v128.load(v), v1 = v128.load(v, 16), v2 = v128.load(v, 32), v3 = v128.load(v, 48);
      y0 = fma(p, v0, y0);
      y1 = fma(p, v1, y1);
      y2 = fma(p, v2, y2);
      y3 = fma(p, v3, y3);
      z0 = fma(q, v0, z0);
      z1 = fma(q, v1, z1);
      z2 = fma(q, v2, z2);
      z3 = fma(q, v3, z3);
    }
    v128.store(od0, y0);
    v128.store(od0, y1, 16);
    v128.store(od0, y2, 32);
    v128.store(od0, y3, 48);
    v128.store(od1, z0);
    v128.store(od1, z1, 16);
    v128.store(od1, z2, 32);
    v128.store(od1, z3, 48);
  }
  if (d < hd) {
    for (let jj = a; jj < b; jj++) {
      axpyTail(o0, load<f32>(s0 + (<usize>jj << 2)), krow(sc, jj), d, hd);
      axpyTail(o1, load<f32>(s1 + (<usize>jj << 2)), krow(sc, jj), d, hd);
    }
  }
}

/** y[i] += p x[i] for i in [d, n) (the part of a row past its 16-value chunks). */
@inline function axpyTail(y: usize, p: f32, x: usize, d: i32, n: i32): void {
  const pv = f32x4.splat(p);
  let i = d;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), fma(pv, v128.load(x + (<usize>i << 2)), v128.load(y + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) + p * load<f32>(x + (<usize>i << 2)));
}

/** O[r] += p[r, j] v_j over block keys [a, b), 16-bit values widened in registers (one-row units). */
@inline function accumulateRaw(dt: i32, sc: usize, r: i32, a: i32, b: i32): void {
  if (a >= b) return;
  const hd = gHd;
  const o = rowO(sc, r), sr = rowS(sc, r);
  if ((hd & 7) != 0) {
    for (let jj = a; jj < b; jj++) kvAxpy(dt, o, load<f32>(sr + (<usize>jj << 2)), krow(sc, jj), hd);
    return;
  }
  let d = 0;
  // 32 outputs a pass: eight FMA chains across the keys, as accumulateRange
  for (; d + 32 <= hd; d += 32) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16), y2 = v128.load(od, 32), y3 = v128.load(od, 48);
    let y4 = v128.load(od, 64), y5 = v128.load(od, 80), y6 = v128.load(od, 96), y7 = v128.load(od, 112);
    for (let jj = a; jj < b; jj++) {
      const v = krow(sc, jj);
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      let k = v128.load(v + (<usize>d << 1));
      y0 = fma(p, rawLo(dt, k), y0);
      y1 = fma(p, rawHi(dt, k), y1);
      k = v128.load(v + (<usize>(d + 8) << 1));
      y2 = fma(p, rawLo(dt, k), y2);
      y3 = fma(p, rawHi(dt, k), y3);
      k = v128.load(v + (<usize>(d + 16) << 1));
      y4 = fma(p, rawLo(dt, k), y4);
      y5 = fma(p, rawHi(dt, k), y5);
      k = v128.load(v + (<usize>(d + 24) << 1));
      y6 = fma(p, rawLo(dt, k), y6);
      y7 = fma(p, rawHi(dt, k), y7);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
    v128.store(od, y2, 32);
    v128.store(od, y3, 48);
    v128.store(od, y4, 64);
    v128.store(od, y5, 80);
    v128.store(od, y6, 96);
    v128.store(od, y7, 112);
  }
  for (; d < hd; d += 8) {
    const od = o + (<usize>d << 2);
    let y0 = v128.load(od), y1 = v128.load(od, 16);
    for (let jj = a; jj < b; jj++) {
      const v = krow(sc, jj);
      const p = v128.load32_splat(sr + (<usize>jj << 2));
      const k = v128.load(v + (<usize>d << 1));
      y0 = fma(p, rawLo(dt, k), y0);
      y1 = fma(p, rawHi(dt, k), y1);
    }
    v128.store(od, y0);
    v128.store(od, y1, 16);
  }
}

/** y[i] *= a over n f32 values. */
export function scaleRow(y: usize, a: f32, n: i32): void {
  const av = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), f32x4.mul(v128.load(y + (<usize>i << 2)), av));
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), load<f32>(y + (<usize>i << 2)) * a);
}

/**
 * GPTQ (Frantar et al., 2022) for one linear layer W [rows, cols] with input Hessian
 * H = 2 X^T X / N [cols, cols] (hessian.ts): columns are quantized in order, and each
 * column's rounding error is spread over the columns not yet quantized, weighted by the
 * inverse Hessian, so that the layer's output X W^T moves as little as possible:
 *
 *   H += damp * mean(diag H) * I (damp 10% here);   U = upper Cholesky factor of H^-1 (H^-1 = U^T U)
 *   for column i:  q = Q(w_i);  e = (w_i - q) / U[i, i];  w_j -= e * U[i, j]  (j > i)
 *
 * Each group's grid (scale, zero) is fitted (quantize.ts fitGroup, as round-to-nearest
 * fits it) from the group's values as compensated when the pass reaches its first column,
 * so the result is the same packed format (packed.ts) the kernels already run, ragged
 * last group included. Where a group may take several grids, each runs the group's
 * columns and the one adding least to GPTQ's loss is kept: symmetric int4, the extreme at
 * -8 (Q4_0's), -7 or clipped (SYM_INT4_STEPS); asymmetric int4, its own or the symmetric
 * grid (the format stores either). After the pass, refine.ts's sweeps lower the same loss
 * further (scales by least squares, codes one at a time). Rows are done a
 * group at a time (the group's errors reach later columns after it, in the same order);
 * no act-order: the format has no column permutation.
 */
import { cholesky, inverseFromCholesky } from "./linalg.js";
import type { PackedLayout, PackedMatrix } from "./packed.js";
import { codeOn, emptyPacked, fitGroup, fitSymInt4, setCode, setGrid, valueOf, type GridDType, type GroupGrid } from "./quantize.js";
import { DEFAULT_REFINE_SWEEPS, refineRows } from "./refine.js";

/**
 * Dampening, as a fraction of the mean of H's diagonal. The GPTQ paper uses 1%; with the
 * few thousand calibration tokens a build gets, 1% overfits them (stories260K: ffn_down's
 * output error on held-out text no better than round-to-nearest's), 10% measured better
 * (bench/RESULTS.md, "int4-wo calibrated").
 */
export const DEFAULT_GPTQ_DAMP = 0.1;

export interface GptqResult {
  packed: PackedMatrix;
  /** The dampening used, as a fraction of mean(diag H) (raised where H^-1's factor needed it). */
  damp: number;
  /** Input columns that never saw a non-zero value (their weights are set to 0, as GPTQ does). */
  deadColumns: number;
  /** Asymmetric int4: groups where the symmetric grid (zero 8) was kept. */
  symGroups: number;
  /** GPTQ's loss (summed over rows, dampened H) after its pass and after refine.ts's sweeps. */
  loss: { gptq: number; refined: number };
}

/** U (upper, [n, n]) with U^T U = Hd^-1, Hd = H + damp * mean(diag H) * I, raising damp tenfold until Hd is positive definite. */
function inverseFactor(H: Float64Array, n: number, damp: number): { U: Float64Array; Hd: Float64Array; damp: number } {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += H[i * n + i] / n;
  for (let d = damp, tries = 0; tries < 6; tries++, d *= 10) {
    const Hd = H.slice();
    for (let i = 0; i < n; i++) Hd[i * n + i] += d * mean;
    const L = cholesky(Hd, n);
    const Li = L && cholesky(inverseFromCholesky(L, n), n); // lower: H^-1 = Li Li^T, so U = Li^T
    if (!Li) continue;
    const U = new Float64Array(n * n); // [n, n] upper
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) U[i * n + j] = Li[j * n + i];
    return { U, Hd, damp: d };
  }
  throw new Error(`gptq: the Hessian [${n}, ${n}] is not positive definite even with ${damp * 1e5}% dampening`);
}

export function gptqQuantize(w: Float32Array, rows: number, cols: number, hessian: Float64Array, dtype: GridDType, layout: PackedLayout, damp = DEFAULT_GPTQ_DAMP, refineSweeps = DEFAULT_REFINE_SWEEPS): GptqResult {
  if (w.length !== rows * cols || hessian.length !== cols * cols) throw new Error(`gptq: ${w.length} weights and a ${hessian.length}-value Hessian for [${rows}, ${cols}]`);
  const W = Float64Array.from(w); // [rows, cols], compensated as the pass goes
  const H = hessian.slice(); // [cols, cols]
  let deadColumns = 0;
  for (let i = 0; i < cols; i++) {
    if (H[i * cols + i] !== 0) continue;
    deadColumns++;
    H[i * cols + i] = 1;
    for (let n = 0; n < rows; n++) W[n * cols + i] = 0;
  }
  const target = W.slice(); // the weights GPTQ aims at (dead columns zeroed)
  const f = inverseFactor(H, cols, damp);
  const U = f.U;
  const gs = layout.groupSize;
  const G = Math.ceil(cols / gs);
  const grids: GroupGrid[] = new Array(rows * G); // [rows, G]
  const codes = new Int32Array(rows * cols); // [rows, cols]
  let symGroups = 0;
  let gptqLoss = 0;
  for (let g0 = 0, g = 0; g0 < cols; g0 += gs, g++) {
    const g1 = Math.min(cols, g0 + gs); // ragged last group
    for (let n = 0; n < rows; n++) {
      const row = n * cols;
      // each candidate grid runs the group's columns on a copy; the one adding least to GPTQ's loss is kept
      const passes = gridCandidates(W, row, g0, g1, dtype, layout).map((grid) => quantizeGroup(W, row, g0, g1, grid, U, cols));
      const kept = passes.reduce((b, p, i) => (p.loss < passes[b].loss ? i : b), 0);
      if (layout.asym && kept === 1) symGroups++;
      const { grid, errors } = passes[kept];
      grids[n * G + g] = grid;
      passes[kept].codes.forEach((c, i) => (codes[row + g0 + i] = c));
      gptqLoss += passes[kept].loss;
      // the group's errors spread over the columns after it (in column order, as an unblocked pass would)
      for (let i = 0; i < errors.length; i++) {
        const e = errors[i];
        if (e === 0) continue;
        const u = (g0 + i) * cols;
        for (let j = g1; j < cols; j++) W[row + j] -= e * U[u + j];
      }
    }
  }
  // the sweeps store f32 scales (the int4 / int8 weight-only layouts)
  const refined = refineSweeps > 0 && layout.scale === "f32" ? refineRows(target, f.Hd, rows, cols, gs, grids, codes, refineSweeps).after : null;
  const out = emptyPacked(rows, cols, dtype, layout);
  for (let n = 0; n < rows; n++) for (let g = 0; g < G; g++) setGrid(out, n, g, grids[n * G + g]);
  for (let n = 0; n < rows; n++) for (let k = 0; k < cols; k++) setCode(out, n, k, codes[n * cols + k]);
  return { packed: out, damp: f.damp, deadColumns, symGroups, loss: { gptq: gptqLoss, refined: refined ?? gptqLoss } };
}

/**
 * Symmetric int4: the extreme value's place on the grid, -8 (all 16 levels, as Q4_0) then
 * the candidates the group's loss picks among: 7 (a wider step, no level lost to the
 * other sign's clipping), 7.5, and 8.5 .. 10 (the extreme clipped, a finer step for the
 * rest). stories260K int4 g32: KL to fp32 63e-3 -> 56e-3 (bench/RESULTS.md).
 */
export const SYM_INT4_STEPS: readonly number[] = [8, 7, 7.5, 8.5, 9, 9.5, 10];

/**
 * The grids a group may take, the first the layout's own fit: symmetric int4, the extreme
 * at each of SYM_INT4_STEPS; asymmetric int4, also the symmetric one (zero 8), which the
 * asymmetric format stores as it is, and which wins where a group's values are balanced
 * around 0 (its step is finer at the extreme).
 */
function gridCandidates(W: Float64Array, row: number, g0: number, g1: number, dtype: GridDType, layout: PackedLayout): GroupGrid[] {
  if (dtype === "int4" && !layout.asym) return SYM_INT4_STEPS.map((s) => fitSymInt4(W, row, g0, g1, layout, s));
  const own = fitGroup(W, row, g0, g1, dtype, layout);
  return dtype === "int4" && layout.asym ? [own, fitGroup(W, row, g0, g1, dtype, { ...layout, asym: false })] : [own];
}

interface GroupPass {
  grid: GroupGrid;
  codes: number[];
  /** Per column, (w - q) / U[i, i]: what GPTQ spreads over later columns. */
  errors: Float64Array;
  /** sum of errors^2: the group's addition to GPTQ's objective. */
  loss: number;
}

/** GPTQ over the columns [g0, g1) of one row on `grid`, compensating within the group on a copy. */
function quantizeGroup(W: Float64Array, row: number, g0: number, g1: number, grid: GroupGrid, U: Float64Array, cols: number): GroupPass {
  const v = W.slice(row + g0, row + g1); // [g1 - g0] the group's values, compensated as it goes
  const errors = new Float64Array(g1 - g0);
  const codes: number[] = [];
  let loss = 0;
  for (let i = 0; i < v.length; i++) {
    const code = codeOn(v[i], grid);
    codes.push(code);
    const u = (g0 + i) * cols;
    const e = (v[i] - valueOf(code, grid)) / U[u + g0 + i];
    errors[i] = e;
    loss += e * e;
    if (e !== 0) for (let j = i + 1; j < v.length; j++) v[j] -= e * U[u + g0 + j];
  }
  return { grid, codes, errors, loss };
}

/**
 * The layer's output error over the calibration inputs, sum_n (w_n - q_n)^T H (w_n - q_n)
 * = 2 ||X (W - Q)^T||^2 / N, and the same of W itself (the output's size), to report it relative.
 */
export function outputError(w: ArrayLike<number>, q: ArrayLike<number>, rows: number, cols: number, H: Float64Array): { error: number; output: number } {
  return { error: weightedError(w, q, rows, cols, H), output: weightedError(w, null, rows, cols, H) };
}

/** sum_n d_n^T H d_n with d = w - q (q null: d = w); H symmetric [cols, cols], so only its lower triangle is read. */
export function weightedError(w: ArrayLike<number>, q: ArrayLike<number> | null, rows: number, cols: number, H: Float64Array): number {
  const d = new Float64Array(cols);
  let sum = 0;
  for (let n = 0; n < rows; n++) {
    const at = n * cols;
    for (let k = 0; k < cols; k++) d[k] = q ? w[at + k] - q[at + k] : w[at + k];
    for (let i = 0; i < cols; i++) {
      const di = d[i];
      if (di === 0) continue;
      const row = i * cols;
      let off = 0;
      for (let j = 0; j < i; j++) off += H[row + j] * d[j];
      sum += di * (H[row + i] * di + 2 * off);
    }
  }
  return sum;
}

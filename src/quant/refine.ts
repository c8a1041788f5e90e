/**
 * Coordinate descent after GPTQ's pass (as QuantEase / GPTQ-then-refine): GPTQ rounds each
 * column once, compensating only columns after it; here every row's loss
 *
 *   (w - q)^T H (w - q)      (H dampened as GPTQ's, so the same objective)
 *
 * is lowered further by sweeps that set each group's scale to its least-squares optimum for
 * the group's codes, then move each code to the grid point nearest its own optimum given
 * the rest (kept only where the loss drops). Zeros and code ranges stay, so the result is
 * the same packed format. Rows are independent (H is shared). Cost per row: cols^2 to
 * start, then about cols^2 a sweep (the scale fits; code moves cost cols each); GPTQ's pass
 * is about cols^2 / 2, so 3 sweeps make a calibrated build's quantization ~2.5-4x slower
 * (a random 1024 x 1024 layer: 6-10 s -> 24 s on a loaded 2-core machine).
 */
import { codeOn, valueOf, type GroupGrid } from "./quantize.js";

/** Sweeps after GPTQ (measured on stories260K int4 g32: KL to fp32 63e-3 -> 50-52e-3; bench/RESULTS.md). */
export const DEFAULT_REFINE_SWEEPS = 3;

/**
 * Refines `grids` ([rows, G], G = ceil(cols / gs)) and `codes` ([rows, cols]) in place
 * toward w ([rows, cols]) under Hd ([cols, cols], symmetric, positive definite). Returns the
 * summed loss before and after.
 */
export function refineRows(w: ArrayLike<number>, Hd: Float64Array, rows: number, cols: number, gs: number, grids: GroupGrid[], codes: Int32Array, sweeps = DEFAULT_REFINE_SWEEPS): { before: number; after: number } {
  const G = Math.ceil(cols / gs);
  const d = new Float64Array(cols); // w - q of the row
  const Hdd = new Float64Array(cols); // Hd d
  let before = 0;
  let after = 0;
  for (let n = 0; n < rows; n++) {
    const row = n * cols;
    for (let k = 0; k < cols; k++) d[k] = w[row + k] - valueOf(codes[row + k], grids[n * G + Math.floor(k / gs)]);
    for (let i = 0; i < cols; i++) {
      let a = 0;
      for (let j = 0; j < cols; j++) a += Hd[i * cols + j] * d[j];
      Hdd[i] = a;
    }
    before += dot(d, Hdd);
    for (let sweep = 0; sweep < sweeps; sweep++) {
      for (let g = 0; g < G; g++) refineScale(n, g, gs, cols, Hd, grids, codes, d, Hdd, G);
      for (let i = 0; i < cols; i++) {
        const grid = grids[n * G + Math.floor(i / gs)];
        const hii = Hd[i * cols + i];
        if (!grid.scale || !(hii > 0)) continue;
        const cur = codes[row + i];
        const c = codeOn(valueOf(cur, grid) + Hdd[i] / hii, grid); // q_i's optimum with the rest fixed, on the grid
        if (c === cur) continue;
        const dq = valueOf(c, grid) - valueOf(cur, grid);
        if (dq * (dq * hii - 2 * Hdd[i]) >= 0) continue; // the loss's change
        codes[row + i] = c;
        d[i] -= dq;
        const at = i * cols; // Hd's row i = its column i
        for (let j = 0; j < cols; j++) Hdd[j] -= dq * Hd[at + j];
      }
    }
    after += dot(d, Hdd);
  }
  return { before, after };
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);

/**
 * Group g of row n: the scale s minimizing the row's loss for the group's codes c (zero
 * subtracted): d(s) = d + (s_old - s) c, so s = s_old + c^T Hd d / c^T Hd c. The scale is
 * stored as float32 (the caller's layout stores f32 scales), and d, Hd d follow the stored
 * values. Hd is symmetric: its rows are read, not its columns (contiguous).
 */
function refineScale(n: number, g: number, gs: number, cols: number, Hd: Float64Array, grids: GroupGrid[], codes: Int32Array, d: Float64Array, Hdd: Float64Array, G: number): void {
  const grid = grids[n * G + g];
  const k0 = g * gs;
  const k1 = Math.min(cols, k0 + gs);
  const row = n * cols;
  let cHd = 0;
  let cHc = 0;
  for (let i = k0; i < k1; i++) {
    const ci = codes[row + i] - grid.zero;
    if (ci === 0) continue;
    cHd += ci * Hdd[i];
    let a = 0;
    for (let j = k0; j < k1; j++) a += Hd[i * cols + j] * (codes[row + j] - grid.zero);
    cHc += ci * a;
  }
  if (!(cHc > 0)) return;
  const scale = Math.fround(grid.scale + cHd / cHc);
  if (!(scale !== 0 && Math.sign(scale) === Math.sign(grid.scale))) return;
  const next = { ...grid, scale };
  grids[n * G + g] = next;
  for (let i = k0; i < k1; i++) {
    const diff = valueOf(codes[row + i], grid) - valueOf(codes[row + i], next); // d_i moves by this
    if (diff === 0) continue;
    d[i] += diff;
    const at = i * cols;
    for (let j = 0; j < cols; j++) Hdd[j] += Hd[at + j] * diff;
  }
}

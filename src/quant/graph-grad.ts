/**
 * Reverse-mode gradients through a graph, for calibration (quant/tune-scales.ts): one
 * window of tokens as one sequence from position 0, every row scored, the cache replaced
 * by the window's own keys and values. The forward runs the reference ops (run-op.ts)
 * except matmuls (BLAS where there is one) and attention (which keeps its softmax weights
 * for the backward); backward() walks the ops in reverse and returns the gradients of the
 * weights asked for. Collectives and packed weights are not supported:
 * the caller hands dense (dequantized) weights of one unsharded graph.
 */
import { availableParallelism } from "node:os";
import type { WeightMap } from "../backends/backend.js";
import { systemBlas } from "../backends/cpu/blas.js";
import { rmsnorm, rope } from "../backends/reference/ops.js";
import { ropePair } from "../backends/reference/rope.js";
import { runOp } from "../backends/reference/run-op.js";
import { colsOf, type AttentionGeometry, type Graph, type Op, type RotaryDims } from "../graph/ir.js";
import { prefillStep } from "./calibrate.js";

/** BLAS threads for products of at least 2^24 multiply-adds (smaller ones ran slower on more than one). */
const THREADS = availableParallelism();
const threadsFor = (multiplyAdds: number) => (multiplyAdds >= 1 << 24 ? THREADS : 1);

const SUPPORTED = new Set<Op["op"]>(["embedding", "rmsnorm", "add_rmsnorm", "matmul", "slice_cols", "rope_inv_freq", "rope", "kv_write", "attention", "attention_qkv", "silu", "mul", "silu_mul", "add", "gather_rows"]);

/** Why `g` cannot be differentiated here, or null when it can. */
export function unsupportedOp(g: Graph): string | null {
  const op = g.ops.find((o) => !SUPPORTED.has(o.op));
  return op ? `op ${op.op} has no gradient here` : null;
}

/** What an attention's backward needs: rotated q [T, qDim], k [T, kvDim], v [T, kvDim], softmax weights [heads, T, T]. */
interface AttnRecord {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  p: Float32Array;
}

/** One forward pass: every activation [T, cols], and each attention's record (by its out). */
export interface Tape {
  T: number;
  acts: Map<string, Float32Array>;
  attn: Map<string, AttnRecord>;
}

export class GraphGrad {
  constructor(
    private readonly g: Graph,
    /** Dense weights by name; the caller may replace entries between passes. */
    readonly weights: WeightMap,
  ) {
    const why = unsupportedOp(g);
    if (why) throw new Error(`graph-grad: ${why}`);
  }

  private cols(name: string): number {
    return colsOf(this.g, name);
  }

  forward(ids: readonly number[]): Tape {
    const T = ids.length;
    const step = { ...prefillStep(ids), logitRows: Int32Array.from(ids, (_, i) => i) }; // every row scored
    const acts = new Map<string, Float32Array>();
    const attn: Tape["attn"] = new Map();
    const kvOf = new Map<number, { k: string; v: string }>();
    const get = (n: string) => acts.get(n) ?? this.weights.get(n) ?? fail(`tensor ${n} read before it was written`);
    const out = (n: string) => {
      const a = new Float32Array(T * this.cols(n));
      acts.set(n, a);
      return a;
    };
    for (const op of this.g.ops) {
      switch (op.op) {
        case "matmul": {
          const o = out(op.out), N = this.cols(op.out);
          product(o, false, get(op.x), true, get(op.w), T, N, this.cols(op.x), false);
          if (op.bias) {
            const bias = get(op.bias);
            for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) o[t * N + n] += bias[n];
          }
          break;
        }
        case "kv_write":
          kvOf.set(op.layer, { k: op.k, v: op.v });
          break;
        case "attention": {
          const kv = kvOf.get(op.layer) ?? fail(`attention of layer ${op.layer} before its kv_write`);
          const rec = { q: get(op.q), k: get(kv.k), v: get(kv.v), p: new Float32Array(op.numHeads * T * T) };
          attend(out(op.out), rec, T, op);
          attn.set(op.out, rec);
          break;
        }
        case "attention_qkv": {
          const { q, k, v } = splitQkv(get(op.qkv), T, op);
          if (op.qNorm) rmsnorm(q, q, get(op.qNorm), op.eps, op.headDim);
          if (op.kNorm) rmsnorm(k, k, get(op.kNorm), op.eps, op.headDim);
          rope(q, q, step.positions, get(op.invFreq), op.headDim, op.rotary);
          rope(k, k, step.positions, get(op.invFreq), op.headDim, op.rotary);
          out(op.q).set(q);
          const rec = { q, k, v, p: new Float32Array(op.numHeads * T * T) };
          attend(out(op.out), rec, T, op);
          attn.set(op.out, rec);
          break;
        }
        default:
          runOp(op, { graph: this.g, step, cache: [], blockSize: 0, get, out });
      }
    }
    return { T, acts, attn };
  }

  /**
   * Gradients of the weights in `want` given the loss's gradients `dOut` of some
   * activations (the logits), through the activations of `tape`.
   */
  backward(tape: Tape, dOut: Map<string, Float32Array>, want: ReadonlySet<string>): Map<string, Float32Array> {
    const { T, acts } = tape;
    const grads = new Map<string, Float32Array>(dOut);
    const wgrads = new Map<string, Float32Array>();
    const act = (n: string) => acts.get(n) ?? this.weights.get(n) ?? fail(`tensor ${n} not on the tape`);
    const isAct = (n: string) => this.g.tensors.get(n)?.kind === "activation";
    /** The gradient buffer of activation n, created (zero) on first use. */
    const gradOf = (n: string) => {
      let d = grads.get(n);
      if (!d) grads.set(n, (d = new Float32Array(T * this.cols(n))));
      return d;
    };
    const wgradOf = (n: string) => {
      let d = wgrads.get(n);
      if (!d) wgrads.set(n, (d = new Float32Array(this.weights.get(n)!.length)));
      return d;
    };
    const kvOf = new Map<number, { k: string; v: string }>();
    for (const op of this.g.ops) if (op.op === "kv_write") kvOf.set(op.layer, { k: op.k, v: op.v });

    for (let i = this.g.ops.length - 1; i >= 0; i--) {
      const op = this.g.ops[i];
      switch (op.op) {
        case "embedding":
        case "rope_inv_freq":
        case "kv_write":
          break;
        case "rmsnorm": {
          const dy = grads.get(op.out);
          if (!dy) break;
          rmsnormBack(dy, act(op.x), act(op.weight), op.eps, op.groupSize, isAct(op.x) ? gradOf(op.x) : null, want.has(op.weight) ? wgradOf(op.weight) : null);
          break;
        }
        case "add_rmsnorm": {
          const dy = grads.get(op.out);
          const ds = gradOf(op.sum); // the sum's own readers, plus the norm's share
          if (dy) rmsnormBack(dy, act(op.sum), act(op.weight), op.eps, this.cols(op.sum), ds, want.has(op.weight) ? wgradOf(op.weight) : null);
          for (const n of [op.a, op.b]) if (isAct(n)) addInto(gradOf(n), ds);
          break;
        }
        case "matmul": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const K = this.cols(op.x), N = this.cols(op.out);
          if (isAct(op.x)) product(gradOf(op.x), false, dy, false, act(op.w), T, K, N, true); // dx += dy w
          if (want.has(op.w)) product(wgradOf(op.w), true, dy, false, act(op.x), N, K, T, true); // dw += dy^T x
          if (op.bias && want.has(op.bias)) {
            const db = wgradOf(op.bias);
            for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) db[n] += dy[t * N + n];
          }
          break;
        }
        case "slice_cols": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const xc = this.cols(op.x), n = this.cols(op.out), dx = gradOf(op.x);
          for (let t = 0; t < T; t++) for (let j = 0; j < n; j++) dx[t * xc + op.start + j] += dy[t * n + j];
          break;
        }
        case "rope": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const d = dy.slice();
          unrope(d, T, act(op.invFreq), op.headDim, op.rotary); // a rotation's gradient: the inverse rotation
          addInto(gradOf(op.x), d);
          break;
        }
        case "attention": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const kv = kvOf.get(op.layer)!;
          const rec = tape.attn.get(op.out)!;
          const { dq, dk, dv } = attendBack(dy, rec, T, op);
          addInto(gradOf(op.q), dq);
          addInto(gradOf(kv.k), dk);
          addInto(gradOf(kv.v), dv);
          break;
        }
        case "attention_qkv": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const rec = tape.attn.get(op.out)!;
          const { dq, dk, dv } = attendBack(dy, rec, T, op);
          const inv = act(op.invFreq);
          unrope(dq, T, inv, op.headDim, op.rotary);
          unrope(dk, T, inv, op.headDim, op.rotary);
          const pre = splitQkv(act(op.qkv), T, op); // q and k before their norms
          const dqn = op.qNorm ? normBack(dq, pre.q, act(op.qNorm), op.eps, op.headDim, want.has(op.qNorm) ? wgradOf(op.qNorm) : null) : dq;
          const dkn = op.kNorm ? normBack(dk, pre.k, act(op.kNorm), op.eps, op.headDim, want.has(op.kNorm) ? wgradOf(op.kNorm) : null) : dk;
          const dqkv = gradOf(op.qkv);
          const qDim = op.numHeads * op.headDim, kvDim = op.numKvHeads * op.headDim, row = qDim + 2 * kvDim;
          for (let t = 0; t < T; t++) {
            for (let j = 0; j < qDim; j++) dqkv[t * row + j] += dqn[t * qDim + j];
            for (let j = 0; j < kvDim; j++) {
              dqkv[t * row + qDim + j] += dkn[t * kvDim + j];
              dqkv[t * row + qDim + kvDim + j] += dv[t * kvDim + j];
            }
          }
          break;
        }
        case "silu": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const x = act(op.x), dx = gradOf(op.x);
          for (let j = 0; j < dy.length; j++) dx[j] += dy[j] * siluGrad(x[j]);
          break;
        }
        case "mul": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const a = act(op.a), b = act(op.b);
          if (isAct(op.a)) {
            const da = gradOf(op.a);
            for (let j = 0; j < dy.length; j++) da[j] += dy[j] * b[j];
          }
          if (isAct(op.b)) {
            const db = gradOf(op.b);
            for (let j = 0; j < dy.length; j++) db[j] += dy[j] * a[j];
          }
          break;
        }
        case "silu_mul": {
          const dy = grads.get(op.out);
          if (!dy) break;
          const I = this.cols(op.out), x = act(op.x), dx = gradOf(op.x);
          for (let t = 0; t < T; t++)
            for (let j = 0; j < I; j++) {
              const gi = t * 2 * I + j, ui = gi + I, d = dy[t * I + j];
              const gt = x[gi];
              dx[gi] += d * x[ui] * siluGrad(gt);
              dx[ui] += d * (gt / (1 + Math.exp(-gt)));
            }
          break;
        }
        case "add": {
          const dy = grads.get(op.out);
          if (!dy) break;
          for (const n of [op.a, op.b]) if (isAct(n)) addInto(gradOf(n), dy);
          break;
        }
        case "gather_rows": {
          const dy = grads.get(op.out);
          if (dy) addInto(gradOf(op.x), dy);
          break;
        }
        default:
          fail(`op ${op.op} has no gradient here`);
      }
    }
    return wgrads;
  }
}

function fail(msg: string): never {
  throw new Error(`graph-grad: ${msg}`);
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] += src[i];
}

function siluGrad(x: number): number {
  const s = 1 / (1 + Math.exp(-x));
  return s * (1 + x * (1 - s));
}

/**
 * RMSNorm's backward, y = w * x * r with r = (mean(x^2) + eps)^-1/2 per group:
 * dx_i = r (w_i dy_i) - x_i r^3 sum_j (w_j dy_j x_j) / n; dw_i = sum over groups of dy_i x_i r.
 */
function rmsnormBack(dy: Float32Array, x: Float32Array, w: Float32Array, eps: number, group: number, dx: Float32Array | null, dw: Float32Array | null): void {
  for (let b = 0; b < x.length; b += group) {
    let ss = 0, dot = 0;
    for (let i = 0; i < group; i++) {
      ss += x[b + i] * x[b + i];
      dot += w[i] * dy[b + i] * x[b + i];
    }
    const r = 1 / Math.sqrt(ss / group + eps);
    const c = (r * r * r * dot) / group;
    for (let i = 0; i < group; i++) {
      if (dx) dx[b + i] += r * w[i] * dy[b + i] - x[b + i] * c;
      if (dw) dw[i] += dy[b + i] * x[b + i] * r;
    }
  }
}

/** rmsnormBack into a fresh dx. */
function normBack(dy: Float32Array, x: Float32Array, w: Float32Array, eps: number, group: number, dw: Float32Array | null): Float32Array {
  const dx = new Float32Array(dy.length);
  rmsnormBack(dy, x, w, eps, group, dx, dw);
  return dx;
}

/**
 * out [M, N] (+)= op(a) @ op(b), row-major: op(a) [M, L] is a, or a [L, M] transposed (ta);
 * op(b) [L, N] is b, or b [N, L] transposed (tb). The system BLAS where there is one, else
 * one dot product of two contiguous rows per entry.
 */
function product(out: Float32Array, ta: boolean, a: Float32Array, tb: boolean, b: Float32Array, M: number, N: number, L: number, accumulate: boolean): void {
  const blas = systemBlas();
  if (blas) return blas.gemm(ta, tb, M, N, L, a, b, out, accumulate ? 1 : 0, threadsFor(M * N * L));
  const rowsA = ta ? transpose(a, L, M) : a; // [M, L]
  const rowsB = tb ? b : transpose(b, L, N); // [N, L]
  for (let m = 0; m < M; m++) {
    const ao = m * L;
    for (let n = 0; n < N; n++) {
      const bo = n * L;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, l = 0;
      for (; l + 4 <= L; l += 4) {
        s0 += rowsA[ao + l] * rowsB[bo + l];
        s1 += rowsA[ao + l + 1] * rowsB[bo + l + 1];
        s2 += rowsA[ao + l + 2] * rowsB[bo + l + 2];
        s3 += rowsA[ao + l + 3] * rowsB[bo + l + 3];
      }
      for (; l < L; l++) s0 += rowsA[ao + l] * rowsB[bo + l];
      const s = s0 + s1 + s2 + s3;
      out[m * N + n] = accumulate ? out[m * N + n] + s : s;
    }
  }
}

/** a [R, C] -> [C, R] */
function transpose(a: Float32Array, R: number, C: number): Float32Array {
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = a[r * C + c];
  return out;
}

/** Rotates each head of x [T, heads * headDim] back by its position t, in place: ops.ts's rope inverted. */
function unrope(x: Float32Array, T: number, invFreq: Float32Array, headDim: number, rotary: RotaryDims): void {
  const cols = x.length / T;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < rotary.dim / 2; i++) {
      const angle = t * invFreq[i];
      const cos = Math.cos(angle), sin = Math.sin(angle);
      const [a, b] = ropePair(rotary, i);
      for (let h = t * cols; h < (t + 1) * cols; h += headDim) {
        const x0 = x[h + a], x1 = x[h + b];
        x[h + a] = x0 * cos + x1 * sin;
        x[h + b] = x1 * cos - x0 * sin;
      }
    }
  }
}

/** Copies of the q, k, v parts of packed rows qkv [T, qDim + 2 kvDim]. */
function splitQkv(qkv: Float32Array, T: number, g: AttentionGeometry): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const qDim = g.numHeads * g.headDim, kvDim = g.numKvHeads * g.headDim, row = qDim + 2 * kvDim;
  const q = new Float32Array(T * qDim), k = new Float32Array(T * kvDim), v = new Float32Array(T * kvDim);
  for (let t = 0; t < T; t++) {
    q.set(qkv.subarray(t * row, t * row + qDim), t * qDim);
    k.set(qkv.subarray(t * row + qDim, t * row + qDim + kvDim), t * kvDim);
    v.set(qkv.subarray(t * row + qDim + kvDim, (t + 1) * row), t * kvDim);
  }
  return { q, k, v };
}

/** First position token t sees. */
const firstSeen = (t: number, g: AttentionGeometry) => (g.slidingWindow === null ? 0 : Math.max(0, t - g.slidingWindow + 1));

/** x [T, heads * D] -> per head contiguous [heads, T, D]. */
function byHead(x: Float32Array, T: number, heads: number, D: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) out.set(x.subarray((t * heads + h) * D, (t * heads + h + 1) * D), (h * T + t) * D);
  return out;
}

/** Adds per-head y [heads, T, D] into x [T, heads * D]. */
function addFromHeads(x: Float32Array, y: Float32Array, T: number, heads: number, D: number): void {
  for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) x[(t * heads + h) * D + d] += y[(h * T + t) * D + d];
}

/** Causal attention of one sequence, per head as matrix products; fills rec.p [heads, T, T] with the softmax weights (0 where masked). */
function attend(out: Float32Array, rec: AttnRecord, T: number, g: AttentionGeometry): void {
  const { numHeads: H, numKvHeads: KH, headDim: D, scale } = g;
  const group = H / KH, TT = T * T, TD = T * D;
  const q = byHead(rec.q, T, H, D), k = byHead(rec.k, T, KH, D), v = byHead(rec.v, T, KH, D);
  const o = new Float32Array(out.length);
  for (let h = 0; h < H; h++) {
    const c = Math.floor(h / group);
    const p = rec.p.subarray(h * TT, (h + 1) * TT);
    product(p, false, q.subarray(h * TD, (h + 1) * TD), true, k.subarray(c * TD, (c + 1) * TD), T, T, D, false); // scores Q K^T
    for (let t = 0; t < T; t++) {
      const row = t * T, first = firstSeen(t, g);
      let max = -Infinity;
      for (let j = first; j <= t; j++) max = Math.max(max, p[row + j] * scale);
      let sum = 0;
      for (let j = 0; j < T; j++) sum += p[row + j] = j < first || j > t ? 0 : Math.exp(p[row + j] * scale - max);
      for (let j = first; j <= t; j++) p[row + j] /= sum;
    }
    product(o.subarray(h * TD, (h + 1) * TD), false, p, false, v.subarray(c * TD, (c + 1) * TD), T, D, T, false); // P V
  }
  out.fill(0);
  addFromHeads(out, o, T, H, D);
}

/** attend's backward: gradients of the rotated q, the keys and the values. */
function attendBack(dy: Float32Array, rec: AttnRecord, T: number, g: AttentionGeometry): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const { numHeads: H, numKvHeads: KH, headDim: D, scale } = g;
  const group = H / KH, TT = T * T, TD = T * D;
  const qh = byHead(rec.q, T, H, D), kh = byHead(rec.k, T, KH, D), vh = byHead(rec.v, T, KH, D), dyh = byHead(dy, T, H, D);
  const dqh = new Float32Array(qh.length), dkh = new Float32Array(kh.length), dvh = new Float32Array(vh.length);
  const ds = new Float32Array(TT);
  for (let h = 0; h < H; h++) {
    const c = Math.floor(h / group);
    const p = rec.p.subarray(h * TT, (h + 1) * TT), dO = dyh.subarray(h * TD, (h + 1) * TD), hq = qh.subarray(h * TD, (h + 1) * TD);
    const hk = kh.subarray(c * TD, (c + 1) * TD), hv = vh.subarray(c * TD, (c + 1) * TD);
    product(dvh.subarray(c * TD, (c + 1) * TD), true, p, false, dO, T, D, T, true); // dV += P^T dO
    product(ds, false, dO, true, hv, T, T, D, false); // dP = dO V^T
    for (let t = 0; t < T; t++) {
      const row = t * T;
      let dot = 0;
      for (let j = 0; j <= t; j++) dot += p[row + j] * ds[row + j];
      for (let j = 0; j < T; j++) ds[row + j] = p[row + j] * (ds[row + j] - dot) * scale; // dS (0 where masked: p = 0)
    }
    product(dqh.subarray(h * TD, (h + 1) * TD), false, ds, false, hk, T, D, T, true); // dQ = dS K
    product(dkh.subarray(c * TD, (c + 1) * TD), true, ds, false, hq, T, D, T, true); // dK += dS^T Q
  }
  const dq = new Float32Array(T * H * D), dk = new Float32Array(T * KH * D), dv = new Float32Array(T * KH * D);
  addFromHeads(dq, dqh, T, H, D);
  addFromHeads(dk, dkh, T, KH, D);
  addFromHeads(dv, dvh, T, KH, D);
  return { dq, dk, dv };
}

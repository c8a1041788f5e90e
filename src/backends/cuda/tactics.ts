/**
 * Tactic selection for decode-sized matmuls, as TensorRT times its kernels at build: for
 * every distinct linear shape of the graph and each row-count bucket (1, 2, 4, 8), time
 * the candidate paths on this GPU and keep the fastest. Candidates: gemv (a warp per row),
 * gemv4 (four warps split each row's K), gemm_tc (tensor-core tiles: at 8 rows the GEMVs
 * turn compute-bound, and for int8 / int4 / fp8 weights cuBLASLt is no candidate), and
 * cuBLASLt where it reads the weight as it is.
 * Paths that change numerics (FP8 activations) are never candidates.
 */
import type { CublasLt } from "./cublaslt.js";
import type { CudaDriver, DevPtr } from "./driver.js";
import type { ActDType } from "./dtypes.js";
import { GEMV_MAX_M, GEMV_VEC, launchLinear, type LinearContext, type LinearMode, type LinearPath } from "./linear.js";
import type { KernelModules } from "./modules.js";
import type { DeviceWeight } from "./weights.js";

/** Row counts timed; a step of M rows uses the tactic of the smallest bucket >= M. */
export const TACTIC_M = [1, 2, 4, 8] as const;

const CANDIDATES: [LinearMode, LinearPath][] = [["gemv", "gemv"], ["gemv4", "gemv4"], ["gemm", "gemm_tc"], ["cublas", "cublas"]];

export function tacticBucket(M: number): number | null {
  for (const b of TACTIC_M) if (M <= b) return b;
  return null;
}

function shapeKey(w: Pick<DeviceWeight, "rows" | "cols" | "fmt">, outF32: boolean): string {
  return `${w.rows}x${w.cols} ${w.fmt}${outF32 ? "->f32" : ""}`;
}

/** One timed shape: microseconds per call of each candidate at each bucket, and the winner. */
export interface TacticRow {
  shape: string;
  /** candidate -> [us at M = 1, 2, 4, 8] (NaN: not applicable). */
  us: Record<string, number[]>;
  chosen: LinearPath[];
}

export class Tactics {
  private readonly best = new Map<string, LinearPath>();
  readonly rows: TacticRow[] = [];

  /** The timed-fastest path for weight `w` at M rows writing float32 or not; undefined: no tactic (use the default rule). */
  get(w: Pick<DeviceWeight, "rows" | "cols" | "fmt">, outF32: boolean, M: number): LinearPath | undefined {
    const b = tacticBucket(M);
    return b === null ? undefined : this.best.get(`${shapeKey(w, outF32)}@${b}`);
  }

  set(shape: string, M: number, path: LinearPath): void {
    this.best.set(`${shape}@${M}`, path);
  }

  /** Lines for build logs and the device check: per shape, us per candidate at M = 1/2/4/8, then the pick. */
  summary(): string[] {
    const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
    return this.rows.map((r) => `${r.shape}: ${Object.entries(r.us).map(([c, us]) => `${c} ${us.map(f).join("/")}`).join(", ")} us -> ${r.chosen.join("/")}`);
  }
}

export interface TacticInput {
  driver: CudaDriver;
  k: KernelModules;
  lt: CublasLt | null;
  act: ActDType;
  smCount: number;
  /** Each matmul's weight and whether it writes float32 (the logits). */
  linears: { w: DeviceWeight; outF32: boolean }[];
  /** Most rows a step's matmul can have (no bucket above it is timed). */
  maxRows: number;
  reps?: number;
  /** Overwrite L2 before each timed call (default true; the emulator skips it). */
  flushL2?: boolean;
}

/** Times every candidate for every distinct shape; allocates (and frees) its own input and output scratch. */
export function timeTactics(o: TacticInput): Tactics {
  const t = new Tactics();
  if (o.act === "f32") return t; // gemv alone covers f32
  const shapes = new Map<string, { w: DeviceWeight; outF32: boolean }>();
  for (const l of o.linears) if (l.w.cols % GEMV_VEC[l.w.fmt] === 0) shapes.set(shapeKey(l.w, l.outF32), l);
  if (shapes.size === 0) return t;
  const buckets = TACTIC_M.filter((m) => m <= Math.max(1, Math.min(o.maxRows, GEMV_MAX_M)));
  const maxM = buckets[buckets.length - 1];
  const maxK = Math.max(...[...shapes.values()].map((s) => s.w.cols));
  const maxN = Math.max(...[...shapes.values()].map((s) => s.w.rows));
  const d = o.driver;
  const x = d.alloc(4 * maxM * maxK);
  const out = d.alloc(4 * maxM * maxN);
  const reps = o.reps ?? 10;
  const events = Array.from({ length: 2 * reps }, () => d.createEvent());
  // a step reads each weight once, from HBM: L2 is overwritten between timed calls (a matrix
  // smaller than L2 would otherwise be timed warm, as if read at L2 bandwidth)
  const flushBytes = o.flushL2 === false ? 256 : Math.max(2 * d.info.l2Bytes, 1 << 20);
  const flush = d.alloc(flushBytes);
  try {
    d.memset8(x, 0, 4 * maxM * maxK);
    for (const [shape, { w, outF32 }] of shapes) {
      const row: TacticRow = { shape, us: {}, chosen: [] };
      for (const [mode] of CANDIDATES) row.us[mode] = [];
      for (const M of buckets) {
        let best: [LinearPath, number] | null = null;
        for (const [mode, path] of CANDIDATES) {
          if (mode === "cublas" && (!o.lt || w.fmt !== o.act)) {
            row.us[mode].push(NaN);
            continue;
          }
          const c: LinearContext = { k: o.k, act: o.act, smCount: o.smCount, lt: o.lt, mode, fp8Scratch: noFp8 };
          const time = (n: number) => {
            for (let i = 0; i < n; i++) if (launchLinear(c, out, outF32, x, w, 0, M) !== path) return NaN;
            return 0;
          };
          if (Number.isNaN(time(1))) {
            row.us[mode].push(NaN); // this path does not take the shape (e.g. cuBLASLt has no plan)
            continue;
          }
          for (let r = 0; r < reps; r++) {
            o.k.launch("fill_bytes", [Math.min(Math.ceil(flushBytes / 256), o.smCount * 16), 1, 1], [256, 1, 1], [["ptr", flush], ["u64", flushBytes], ["u64", r]]);
            d.recordEvent(events[2 * r], o.k.stream);
            time(1);
            d.recordEvent(events[2 * r + 1], o.k.stream);
          }
          let ms = 0;
          for (let r = 0; r < reps; r++) ms += d.elapsedMs(events[2 * r], events[2 * r + 1]);
          const us = (1000 * ms) / reps;
          row.us[mode].push(us);
          if (!best || us < best[1]) best = [path, us];
        }
        const pick = best ? best[0] : "gemv";
        row.chosen.push(pick);
        t.set(shape, M, pick);
      }
      t.rows.push(row);
    }
  } finally {
    d.syncStream(o.k.stream);
    d.free(x), d.free(out), d.free(flush);
    for (const e of events) d.destroyEvent(e);
  }
  return t;
}

function noFp8(): never {
  throw new Error("tactics: FP8-activation paths are not candidates");
}

/**
 * Picking tokens on the device (greedy and top-k, kernels/sampling.cu): each logits row
 * is split into chunks of about SELECT_CHUNK, one block each, and the last block of a row
 * to finish merges the chunks' k best (one block a row read an 8B model's 128K logits
 * with a few KB of loads in flight, between two decode steps).
 */
import type { Arg } from "./args.js";
import type { CudaDriver, DevPtr } from "./driver.js";
import type { KernelModules } from "./modules.js";

/** Logits one block scans (a multiple of the 256 threads: 8 loads in flight each). */
export const SELECT_CHUNK = 2048;
export const SELECT_MAX_SPLITS = 64;

/** Blocks a row of V logits is split over, and the logits each reads. */
export function selectSplits(V: number, chunk = SELECT_CHUNK): { P: number; chunk: number } {
  const P = Math.max(1, Math.min(SELECT_MAX_SPLITS, Math.ceil(V / Math.max(1, chunk))));
  return { P, chunk: Math.ceil(V / P) };
}

interface Scratch {
  ids: DevPtr; // [R, k]
  values: DevPtr; // [R, k]
  partIds: DevPtr; // [R, P, k]
  partVals: DevPtr; // [R, P, k]
  done: DevPtr; // [R] blocks finished, zero between launches
  n: number; // R * k entries
  parts: number; // R * P * k entries
  rows: number;
}

export class DeviceSelect {
  private s: Scratch | null = null;

  constructor(
    private readonly driver: CudaDriver,
    private readonly k: KernelModules,
    /** Logits a block scans (tests make it small to split short rows). */
    private readonly chunk = SELECT_CHUNK,
  ) {}

  /** Launches the choice of each row's k best (k = 1: argmax, ids -1 for a row with a NaN or nothing above -Infinity); returns where ids [R, k] and values [R, k] land. */
  launch(logits: DevPtr, R: number, V: number, k: number): { ids: DevPtr; values: DevPtr } {
    const { P, chunk } = selectSplits(V, this.chunk);
    const s = this.scratch(R, k, P);
    const parts: Arg[] = [["ptr", s.partIds], ["ptr", s.partVals], ["ptr", s.done], ["ptr", logits]];
    if (k === 1) this.k.launch("argmax_split", [P, R, 1], [256, 1, 1], [["ptr", s.ids], ...parts, ["i32", V], ["i32", chunk]]);
    else this.k.launch("topk_split", [P, R, 1], [256, 1, 1], [["ptr", s.ids], ["ptr", s.values], ...parts, ["i32", V], ["i32", k], ["i32", chunk]]);
    return s;
  }

  private scratch(R: number, k: number, P: number): Scratch {
    const s = this.s;
    if (s && s.n >= R * k && s.parts >= R * P * k && s.rows >= R) return s;
    this.dispose();
    const n = Math.max(R * k, s?.n ?? 0);
    const parts = Math.max(R * P * k, s?.parts ?? 0);
    const rows = Math.max(R, s?.rows ?? 0);
    const d = this.driver;
    const next: Scratch = { ids: d.alloc(4 * n), values: d.alloc(4 * n), partIds: d.alloc(4 * parts), partVals: d.alloc(4 * parts), done: d.alloc(4 * rows), n, parts, rows };
    d.memset32(next.done, 0, rows);
    return (this.s = next);
  }

  dispose(): void {
    const s = this.s;
    if (s) for (const p of [s.ids, s.values, s.partIds, s.partVals, s.done]) this.driver.free(p);
    this.s = null;
  }
}

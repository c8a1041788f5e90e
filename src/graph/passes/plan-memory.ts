/**
 * Memory planning: every activation gets a byte offset in one arena. Liveness over the
 * op list (a tensor lives from the op that writes it to the last op that reads it;
 * graph outputs to the end) lets tensors whose lifetimes do not overlap share bytes.
 * Placement is greedy by size, largest first, each at the lowest offset that does not
 * collide with an already placed tensor alive at the same time.
 *
 * Sizes are for the engine's capacity: T rows = maxBatchTokens, R rows = the most
 * logit rows a step may ask for, "1" rows = 1. An analysis: the graph is unchanged.
 */
import { opInputs, opOutputs, type Graph, type Rows } from "../ir.js";

export interface PlanCapacity {
  /** Most tokens in one step (maxBatchTokens). */
  T: number;
  /** Most logit rows in one step. */
  R: number;
}

export interface MemoryPlan {
  capacity: PlanCapacity;
  /** Byte alignment of every offset. */
  alignment: number;
  /** Bytes of the one arena. */
  arenaBytes: number;
  /** Bytes if every activation had its own buffer. */
  naiveBytes: number;
  /** Byte offset of each activation in the arena. */
  offsets: Record<string, number>;
}

export const ARENA_ALIGNMENT = 64;

export function rowsFor(rows: Rows, cap: PlanCapacity): number {
  return rows === "T" ? cap.T : rows === "R" ? cap.R : 1;
}

interface Interval {
  name: string;
  bytes: number;
  first: number;
  last: number;
}

/** Live interval [first, last] (op indices) of every activation. */
function liveness(g: Graph, cap: PlanCapacity, alignment: number): Interval[] {
  const byName = new Map<string, Interval>();
  const touch = (name: string, i: number) => {
    const d = g.tensors.get(name);
    if (!d || d.kind !== "activation") return;
    const iv = byName.get(name);
    if (iv) iv.last = Math.max(iv.last, i);
    else {
      const bytes = Math.ceil((rowsFor(d.rows, cap) * d.cols * 4) / alignment) * alignment;
      byName.set(name, { name, bytes, first: i, last: i });
    }
  };
  g.ops.forEach((op, i) => {
    opInputs(op).forEach((t) => touch(t, i));
    opOutputs(op).forEach((t) => touch(t, i));
  });
  g.outputs.forEach((t) => touch(t, g.ops.length));
  return [...byName.values()];
}

export function planMemory(g: Graph, capacity: PlanCapacity, alignment = ARENA_ALIGNMENT): MemoryPlan {
  const intervals = liveness(g, capacity, alignment).sort((a, b) => b.bytes - a.bytes || a.first - b.first);
  const placed: (Interval & { offset: number })[] = [];
  const offsets: Record<string, number> = {};
  let arenaBytes = 0;
  for (const iv of intervals) {
    // tensors alive at the same time, by offset: take the first gap that fits
    const clashes = placed.filter((p) => p.first <= iv.last && iv.first <= p.last).sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const p of clashes) {
      if (offset + iv.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.bytes);
    }
    placed.push({ ...iv, offset });
    offsets[iv.name] = offset;
    arenaBytes = Math.max(arenaBytes, offset + iv.bytes);
  }
  const naiveBytes = intervals.reduce((s, iv) => s + iv.bytes, 0);
  return { capacity, alignment, arenaBytes, naiveBytes, offsets };
}

/** Checks no two activations alive at the same op overlap in the arena (for tests and loading). */
export function checkPlan(g: Graph, plan: MemoryPlan): void {
  const ivs = liveness(g, plan.capacity, plan.alignment);
  for (const iv of ivs) {
    const off = plan.offsets[iv.name];
    if (off === undefined) throw new Error(`memory plan: no offset for "${iv.name}"`);
    if (off % plan.alignment !== 0 || off + iv.bytes > plan.arenaBytes) throw new Error(`memory plan: "${iv.name}" at ${off} is misaligned or past the arena`);
  }
  for (let a = 0; a < ivs.length; a++) {
    for (let b = a + 1; b < ivs.length; b++) {
      const [x, y] = [ivs[a], ivs[b]];
      const live = x.first <= y.last && y.first <= x.last;
      const ox = plan.offsets[x.name];
      const oy = plan.offsets[y.name];
      if (live && ox < oy + y.bytes && oy < ox + x.bytes) throw new Error(`memory plan: "${x.name}" and "${y.name}" overlap while both alive`);
    }
  }
}

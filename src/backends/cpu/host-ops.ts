/**
 * Ops the CPU backend runs on the calling thread, between WASM programs: the collectives
 * (all_reduce, all_gather, send, recv: they block on other ranks, which a kernel in the
 * pool must not do) and the vocabulary-parallel embedding_part that feeds an all_reduce.
 * A step's program is split at each of them (backend.ts): the pool runs the calls before,
 * then the op runs here over the activations in shared memory, then the pool goes on.
 *
 * Activations in the arena are always float32 (plan-memory sizes rows at 4 bytes a
 * column), so the collectives sum float32 views in place; only packed weights are 16-bit.
 */
import { f16Lookup } from "../../checkpoint/fp16.js";
import type { Op } from "../../graph/ir.js";
import type { PlanCapacity } from "../../graph/passes/plan-memory.js";
import type { Collectives } from "../collectives.js";
import * as coll from "../reference/collectives.js";
import type { WasmHeap } from "./heap.js";
import type { TensorTable } from "./tensors.js";

export type HostOp = Extract<Op, { op: "all_reduce" | "all_gather" | "send" | "recv" | "embedding_part" }>;

export function isHostOp(op: Op): op is HostOp {
  return op.op === "all_reduce" || op.op === "all_gather" || op.op === "send" || op.op === "recv" || op.op === "embedding_part";
}

export interface HostContext {
  heap: WasmHeap;
  tensors: TensorTable;
  cap: PlanCapacity;
  /** Token ids of the step ([T]). */
  ids: Int32Array;
  comm?: Collectives;
}

/** Runs one host op; the pool must be idle (its writes are visible: the pool's run returned). */
export function runHostOp(op: HostOp, c: HostContext): void {
  // fresh views each time: growing the memory replaces its buffer
  const view = (name: string) => c.tensors.view(name, c.cap);
  switch (op.op) {
    case "all_reduce":
      return coll.allReduce(c.comm, view(op.out), view(op.x));
    case "all_gather":
      return coll.allGather(c.comm, view(op.out), view(op.x), op.parts);
    case "send":
      return coll.send(c.comm, view(op.x), op.peer);
    case "recv":
      return coll.recv(c.comm, view(op.out), op.peer);
    case "embedding_part":
      return embeddingPart(c, view(op.out), op.table, op.vocabStart);
  }
}

/** out[t] = table[ids[t] - vocabStart] widened to f32, zeros for ids outside this shard.   table [vocabPart, H] packed, out [T, H] */
function embeddingPart(c: HostContext, out: Float32Array, table: string, vocabStart: number): void {
  const w = c.tensors.weights.get(table);
  if (!w) throw new Error(`cpu backend: embedding_part table "${table}" is not a weight`);
  const [rows, H] = w.shape;
  out.fill(0);
  for (let t = 0; t < c.ids.length; t++) {
    const r = c.ids[t] - vocabStart;
    if (r < 0 || r >= rows) continue;
    const dst = out.subarray(t * H, (t + 1) * H);
    if (w.dtype === "f32") dst.set(c.heap.f32(w.ptr + r * H * 4, H));
    else if (w.dtype === "bf16") {
      const h = new Uint16Array(c.heap.memory.buffer, w.ptr + r * H * 2, H);
      const bits = new Uint32Array(dst.buffer, dst.byteOffset, H);
      for (let i = 0; i < H; i++) bits[i] = h[i] << 16;
    } else if (w.dtype === "f16") {
      const h = new Uint16Array(c.heap.memory.buffer, w.ptr + r * H * 2, H);
      const lut = f16Lookup();
      for (let i = 0; i < H; i++) dst[i] = lut[h[i]];
    } else throw new Error(`cpu backend: embedding_part of a ${w.dtype} table`);
  }
}

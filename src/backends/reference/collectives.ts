/**
 * The reference definition of the collective ops. With a communicator they are what
 * the other ranks make of them; without one the engine is a single rank, where a
 * reduction or gather over one rank is a copy.
 */
import type { Collectives } from "../collectives.js";

/** out[t, :] = table[ids[t] - vocabStart, :] when the id is in this shard, else 0.   table [vocabPart, H], out [T, H] */
export function embeddingPart(out: Float32Array, table: Float32Array, ids: Int32Array, H: number, vocabStart: number): void {
  const rows = table.length / H;
  out.fill(0);
  for (let t = 0; t < ids.length; t++) {
    const r = ids[t] - vocabStart;
    if (r >= 0 && r < rows) out.set(table.subarray(r * H, (r + 1) * H), t * H);
  }
}

/** out = sum over the group of x (all [rows, cols]). */
export function allReduce(comm: Collectives | undefined, out: Float32Array, x: Float32Array): void {
  out.set(x);
  if (comm && comm.tpSize > 1) comm.allReduce(out, out.length);
}

/** out [rows, sum(parts)] = the group's x [rows, parts[r]] side by side. */
export function allGather(comm: Collectives | undefined, out: Float32Array, x: Float32Array, parts: readonly number[]): void {
  const rows = x.length / parts[comm?.tpRank ?? 0];
  if (comm && comm.tpSize > 1) return comm.allGather(out, x, rows, parts);
  if (parts.length !== 1) throw new Error(`reference backend: all_gather of ${parts.length} parts needs a communicator`);
  out.set(x);
}

function needComm(comm: Collectives | undefined, what: string): Collectives {
  if (!comm) throw new Error(`reference backend: ${what} needs a communicator (a sharded engine runs through parallel/)`);
  return comm;
}

export function send(comm: Collectives | undefined, x: Float32Array, peer: number): void {
  needComm(comm, "send").send(x, x.length, peer);
}

export function recv(comm: Collectives | undefined, out: Float32Array, peer: number): void {
  needComm(comm, "recv").recv(out, out.length, peer);
}

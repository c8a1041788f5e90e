/**
 * What a backend needs from the other ranks to run a sharded graph's collective ops
 * (all_reduce, all_gather, send, recv in graph/ir.ts). A backend that supports them
 * takes one of these when it is created; the op then calls it in place, synchronously,
 * as a TensorRT-LLM plugin calls NCCL.
 *
 * `Buf` is the backend's buffer: a Float32Array for CPU backends (parallel/shm-collectives.ts
 * implements it over SharedArrayBuffer for ranks that are threads of one process); a device
 * pointer for CUDA, where an NCCL implementation fills it one rank per GPU:
 *   allReduce  -> ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, tpComm, stream)
 *   allGather  -> ncclAllGather into [size, rows, max(parts)] scratch, then a strided copy
 *                 to [rows, sum(parts)] (NCCL gathers contiguous equal chunks)
 *   send/recv  -> ncclSend / ncclRecv on the world communicator (peer = global rank)
 * with the TP communicator made by ncclCommInitRank (or ncclCommSplit by stage) from an
 * ncclUniqueId that rank 0 hands out (deploy/README.md has the multi-node recipe).
 */
export interface Collectives<Buf = Float32Array> {
  /** This rank's index in its tensor-parallel group, and the group's size. */
  readonly tpRank: number;
  readonly tpSize: number;
  /** Global rank (stage-major: rank = stage * tpSize + tpRank). */
  readonly rank: number;
  /**
   * buf[0, count) <- the element-wise sum of every group rank's buf. Every rank gets the
   * same bits (a fixed summation order), so replicated computations never drift apart.
   */
  allReduce(buf: Buf, count: number): void;
  /** out [rows, sum(parts)] <- part [rows, parts[r]] of each group rank r, side by side in rank order. */
  allGather(out: Buf, part: Buf, rows: number, parts: readonly number[]): void;
  /** Hands buf[0, count) to global rank `peer`; may return before the peer has read it. */
  send(buf: Buf, count: number, peer: number): void;
  /** buf[0, count) <- the next buffer global rank `peer` sent this rank (the counts must agree). */
  recv(buf: Buf, count: number, peer: number): void;
}

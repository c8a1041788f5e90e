/**
 * The collective ops and embedding_part of a sharded graph on the CUDA backend, staged
 * through the host: sync the stream, copy the op's rows to a float32 host buffer
 * (bf16/f16 widened), run the Collectives call (parallel/shm-collectives.ts between the
 * rank threads of one process), copy the result back. Correct on any GPU count, slow
 * (two syncs and PCIe copies per collective), and never inside a CUDA graph: a bound
 * graph with any of these ops runs launch by launch (bound.ts). With a DeviceCollectives
 * (nccl.ts) the collectives instead run on device pointers on the stream.
 */
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from "../../checkpoint/fp16.js";
import type { Op } from "../../graph/ir.js";
import type { Collectives } from "../collectives.js";
import * as coll from "../reference/collectives.js";
import type { DevPtr } from "./driver.js";
import { actBytes, type ActDType } from "./dtypes.js";
import type { KernelModules } from "./modules.js";
import type { DeviceWeight } from "./weights.js";

export type CudaHostOp = Extract<Op, { op: "all_reduce" | "all_gather" | "send" | "recv" | "embedding_part" }>;

export function isCudaHostOp(op: Op): op is CudaHostOp {
  return op.op === "all_reduce" || op.op === "all_gather" || op.op === "send" || op.op === "recv" || op.op === "embedding_part";
}

/**
 * Collectives on device buffers, enqueued on the backend's stream (NCCL): same contract
 * as Collectives, buffers are [count] elements of `dtype` at device addresses.
 */
export interface DeviceCollectives {
  readonly tpRank: number;
  readonly tpSize: number;
  readonly rank: number;
  allReduce(buf: DevPtr, count: number, dtype: ActDType): void;
  allGather(out: DevPtr, part: DevPtr, rows: number, parts: readonly number[], dtype: ActDType): void;
  send(buf: DevPtr, count: number, dtype: ActDType, peer: number): void;
  recv(buf: DevPtr, count: number, dtype: ActDType, peer: number): void;
}

export interface HostOpContext {
  k: KernelModules;
  act: ActDType;
  /** The step's token ids (embedding_part). */
  tokenIds: Int32Array;
  comm?: Collectives;
  deviceComm?: DeviceCollectives;
  at(name: string): DevPtr;
  weight(name: string): DeviceWeight;
  isF32(name: string): boolean;
  /** Elements of an activation in this step (rows x cols), and its columns. */
  size(name: string): { n: number; cols: number };
}

function dtypeOf(c: HostOpContext, name: string): ActDType {
  return c.isF32(name) ? "f32" : c.act;
}

/** The tensor's first n elements as float32 (waits for the stream). */
function download(c: HostOpContext, name: string, n: number): Float32Array {
  const d = c.k.driver;
  const t = dtypeOf(c, name);
  const host = t === "f32" ? new Float32Array(n) : new Uint16Array(n);
  d.dtohAsync(host, c.at(name), n * actBytes(t), c.k.stream);
  d.syncStream(c.k.stream);
  if (host instanceof Float32Array) return host;
  return t === "bf16" ? bf16ArrayToF32(host) : f16ArrayToF32(host);
}

/** values -> the tensor, narrowed to its type (waits: `values` may be collected after). */
function upload(c: HostOpContext, name: string, values: Float32Array): void {
  const d = c.k.driver;
  const t = dtypeOf(c, name);
  const host = t === "f32" ? values : t === "bf16" ? f32ArrayToBf16(values) : f32ArrayToF16(values);
  d.htodAsync(c.at(name), host, host.byteLength, c.k.stream);
  d.syncStream(c.k.stream);
}

export function runHostOp(op: CudaHostOp, c: HostOpContext): void {
  if (op.op === "embedding_part") return embeddingPart(c, op.out, op.table, op.vocabStart);
  if (c.deviceComm) return runOnDevice(op, c, c.deviceComm);
  switch (op.op) {
    case "all_reduce": {
      const { n } = c.size(op.x);
      const out = new Float32Array(n);
      coll.allReduce(c.comm, out, download(c, op.x, n));
      return upload(c, op.out, out);
    }
    case "all_gather": {
      const out = new Float32Array(c.size(op.out).n);
      coll.allGather(c.comm, out, download(c, op.x, c.size(op.x).n), op.parts);
      return upload(c, op.out, out);
    }
    case "send":
      return coll.send(c.comm, download(c, op.x, c.size(op.x).n), op.peer);
    case "recv": {
      const out = new Float32Array(c.size(op.out).n);
      coll.recv(c.comm, out, op.peer);
      return upload(c, op.out, out);
    }
  }
}

/** The same ops with the device communicator, on the stream (no host copies). */
function runOnDevice(op: Exclude<CudaHostOp, { op: "embedding_part" }>, c: HostOpContext, dc: DeviceCollectives): void {
  const d = c.k.driver;
  switch (op.op) {
    case "all_reduce": {
      const { n } = c.size(op.x);
      const t = dtypeOf(c, op.x);
      if (t !== dtypeOf(c, op.out)) throw new Error(`cuda backend: all_reduce from ${t} to ${dtypeOf(c, op.out)} is not supported with NCCL`);
      if (c.at(op.out) !== c.at(op.x)) d.dtodAsync(c.at(op.out), c.at(op.x), n * actBytes(t), c.k.stream);
      return dc.allReduce(c.at(op.out), n, t);
    }
    case "all_gather": {
      const { n, cols } = c.size(op.x);
      return dc.allGather(c.at(op.out), c.at(op.x), n / cols, op.parts, dtypeOf(c, op.x));
    }
    case "send":
      return dc.send(c.at(op.x), c.size(op.x).n, dtypeOf(c, op.x), op.peer);
    case "recv":
      return dc.recv(c.at(op.out), c.size(op.out).n, dtypeOf(c, op.out), op.peer);
  }
}

/**
 * out[t] = table[ids[t] - vocabStart] for ids in this rank's shard, zeros elsewhere: a
 * zero fill and one device-to-device row copy per token in the shard, on the stream.
 */
function embeddingPart(c: HostOpContext, out: string, table: string, vocabStart: number): void {
  const d = c.k.driver;
  const w = c.weight(table);
  const { n, cols } = c.size(out);
  if (w.fmt !== dtypeOf(c, out) || w.cols !== cols) throw new Error(`cuda backend: embedding_part table "${table}" is ${w.fmt} [${w.rows}, ${w.cols}], its output ${dtypeOf(c, out)} [*, ${cols}]`);
  const rowBytes = cols * actBytes(w.fmt);
  const bytes = n * actBytes(w.fmt);
  if (bytes % 4 === 0) d.memset32Async(c.at(out), 0, bytes / 4, c.k.stream);
  else (d.syncStream(c.k.stream), d.memset8(c.at(out), 0, bytes));
  const base = c.at(out);
  for (let t = 0; t < n / cols; t++) {
    const r = c.tokenIds[t] - vocabStart;
    if (r >= 0 && r < w.rows) d.dtodAsync(base + t * rowBytes, w.ptr + r * rowBytes, rowBytes, c.k.stream);
  }
}

/**
 * NCCL (libnccl.so.2) through koffi, for sharded engines with one GPU per rank: the
 * collective ops run on device pointers on the backend's stream (no host copies, no
 * syncs, so a step could even be captured as a CUDA graph). The ranks are threads of one
 * process: the main thread makes the ncclUniqueIds (ncclIds), each rank thread joins
 * with NcclCollectives.init on its own GPU (its context current).
 *
 * UNRUN: written against nccl.h 2.x but never run (no multi-GPU machine so far); only
 * library discovery and the enum/argument mapping are unit-tested. Ranks fall back to
 * the host-staged path (host-collectives.ts) where NCCL or a GPU per rank is missing.
 */
import { CudaError, CudaUnavailableError } from "../../errors.js";
import { bindFirst, loadKoffi, openLibrary, type NativeFn } from "./ffi.js";
import type { DevPtr, Ptr } from "./driver.js";
import { actBytes, type ActDType } from "./dtypes.js";
import type { DeviceCollectives } from "./host-collectives.js";
import { findLibrary, systemSearchEnv, type SearchEnv } from "./libs.js";

/** sizeof(ncclUniqueId) (NCCL_UNIQUE_ID_BYTES). */
export const NCCL_UNIQUE_ID_BYTES = 128;
/** ncclDataType_t and ncclRedOp_t (nccl.h). */
export const NCCL_TYPE: Record<ActDType, number> = { f32: 7, f16: 6, bf16: 9 };
export const NCCL_SUM = 0;

const PROTOS: Record<string, string[]> = {
  getUniqueId: ["int ncclGetUniqueId(_Out_ ncclUniqueId *id)"],
  commInitRank: ["int ncclCommInitRank(_Out_ void **comm, int nranks, ncclUniqueId id, int rank)"],
  allReduce: ["int ncclAllReduce(uint64_t send, uint64_t recv, size_t count, int type, int op, void *comm, void *stream)"],
  allGather: ["int ncclAllGather(uint64_t send, uint64_t recv, size_t count, int type, void *comm, void *stream)"],
  send: ["int ncclSend(uint64_t buf, size_t count, int type, int peer, void *comm, void *stream)"],
  recv: ["int ncclRecv(uint64_t buf, size_t count, int type, int peer, void *comm, void *stream)"],
  groupStart: ["int ncclGroupStart()"],
  groupEnd: ["int ncclGroupEnd()"],
  commDestroy: ["int ncclCommDestroy(void *comm)"],
  errorString: ["const char *ncclGetErrorString(int result)"],
};

type Fns = Record<keyof typeof PROTOS, NativeFn>;

let opened: { fn: Fns; path: string } | null = null;

/** libnccl bound once per thread; CudaUnavailableError where it is not found. */
export function openNccl(search: SearchEnv = systemSearchEnv): { fn: Fns; path: string } {
  if (opened) return opened;
  const found = findLibrary("nccl", search);
  if (!found.path) throw new CudaUnavailableError("NCCL (libnccl.so.2) was not found", found.searched, "pip install nvidia-nccl-cu12, or set LLMRT_NCCL_LIB to the folder holding libnccl.so.2");
  const k = loadKoffi();
  // koffi registers type names process-wide per thread: declare once
  try {
    k.struct("ncclUniqueId", { internal: k.array("uint8", NCCL_UNIQUE_ID_BYTES) });
  } catch {
    /* already declared */
  }
  const lib = openLibrary(found.path);
  const fn = Object.fromEntries(Object.entries(PROTOS).map(([name, p]) => [name, bindFirst(lib, p)])) as Fns;
  opened = { fn, path: found.path };
  return opened;
}

function check(fn: Fns, call: string, r: number): void {
  if (r !== 0) throw new CudaError(call, r, `ncclResult ${r}`, String(fn.errorString(r) ?? ""));
}

/** A fresh ncclUniqueId (the main thread makes one per communicator and hands it to the ranks). */
export function ncclUniqueId(search?: SearchEnv): Uint8Array {
  const { fn } = openNccl(search);
  const out: { internal: number[] }[] = [{ internal: [] }];
  check(fn, "ncclGetUniqueId", fn.getUniqueId(out));
  return Uint8Array.from(out[0].internal);
}

/** The ids of a tp x pp world: one for the world (send/recv), one per stage (its tp group). */
export interface NcclIds {
  world: Uint8Array;
  stages: Uint8Array[];
}

export function ncclIds(pp: number, search?: SearchEnv): NcclIds {
  return { world: ncclUniqueId(search), stages: Array.from({ length: pp }, () => ncclUniqueId(search)) };
}

/** Copies [rows, cols] at (src, srcPitch) to (dst, dstPitch): rows device-to-device copies on the stream. */
export type Copy2D = (dst: DevPtr, dstPitch: number, src: DevPtr, srcPitch: number, rowBytes: number, rows: number) => void;

export interface NcclPlace {
  rank: number;
  stage: number;
  tpRank: number;
  tp: number;
  world: number;
}

export class NcclCollectives implements DeviceCollectives {
  private scratch: { ptr: DevPtr; bytes: number } | null = null;

  private constructor(
    private readonly fn: Fns,
    private readonly world: Ptr,
    private readonly tp: Ptr,
    readonly rank: number,
    readonly tpRank: number,
    readonly tpSize: number,
    private readonly stream: Ptr | null,
    private readonly alloc: (bytes: number) => DevPtr,
    private readonly copy2d: Copy2D,
  ) {}

  /** Joins both communicators (blocks until every rank has joined); the rank's GPU context must be current. */
  static init(ids: NcclIds, place: NcclPlace, stream: Ptr | null, alloc: (bytes: number) => DevPtr, copy2d: Copy2D): NcclCollectives {
    const { fn } = openNccl();
    const join = (id: Uint8Array, n: number, r: number): Ptr => {
      const out: unknown[] = [null];
      check(fn, "ncclCommInitRank", fn.commInitRank(out, n, { internal: Array.from(id) }, r));
      return out[0] as Ptr;
    };
    fn.groupStart(); // both joins in one group: NCCL may not block between them
    let world: Ptr, tp: Ptr;
    try {
      world = join(ids.world, place.world, place.rank);
      tp = join(ids.stages[place.stage], place.tp, place.tpRank);
    } finally {
      check(fn, "ncclGroupEnd", fn.groupEnd());
    }
    return new NcclCollectives(fn, world, tp, place.rank, place.tpRank, place.tp, stream, alloc, copy2d);
  }

  allReduce(buf: DevPtr, count: number, dtype: ActDType): void {
    check(this.fn, "ncclAllReduce", this.fn.allReduce(buf, buf, count, NCCL_TYPE[dtype], NCCL_SUM, this.tp, this.stream));
  }

  /**
   * NCCL gathers equal contiguous chunks: each part padded to [rows, max(parts)] goes into
   * scratch slot tpRank, one ncclAllGather, then each slot's [rows, parts[r]] is copied
   * to its columns of out.
   */
  allGather(out: DevPtr, part: DevPtr, rows: number, parts: readonly number[], dtype: ActDType): void {
    const b = actBytes(dtype);
    const width = Math.max(...parts);
    const slot = rows * width * b;
    const scratch = this.scratchOf(slot * this.tpSize);
    this.copy2d(scratch + this.tpRank * slot, width * b, part, parts[this.tpRank] * b, parts[this.tpRank] * b, rows);
    check(this.fn, "ncclAllGather", this.fn.allGather(scratch + this.tpRank * slot, scratch, rows * width, NCCL_TYPE[dtype], this.tp, this.stream));
    const total = parts.reduce((a, c) => a + c, 0);
    let col = 0;
    parts.forEach((n, r) => {
      this.copy2d(out + col * b, total * b, scratch + r * slot, width * b, n * b, rows);
      col += n;
    });
  }

  send(buf: DevPtr, count: number, dtype: ActDType, peer: number): void {
    check(this.fn, "ncclSend", this.fn.send(buf, count, NCCL_TYPE[dtype], peer, this.world, this.stream));
  }

  recv(buf: DevPtr, count: number, dtype: ActDType, peer: number): void {
    check(this.fn, "ncclRecv", this.fn.recv(buf, count, NCCL_TYPE[dtype], peer, this.world, this.stream));
  }

  /** Grows only (a CUDA graph must not see it move: warm it with the largest step first). */
  private scratchOf(bytes: number): DevPtr {
    if (!this.scratch || this.scratch.bytes < bytes) this.scratch = { ptr: this.alloc(bytes), bytes };
    return this.scratch.ptr;
  }

  destroy(): void {
    this.fn.commDestroy(this.tp);
    this.fn.commDestroy(this.world);
  }
}

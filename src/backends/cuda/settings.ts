/**
 * The CUDA backend's options, with their documented defaults, and the settings a bound
 * graph runs with once the activation type is known.
 */
import type { KvDType, WeightMap } from "../backend.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../checkpoint/fp16.js";
import { OptionError } from "../../errors.js";
import type { Graph } from "../../graph/ir.js";
import type { Collectives } from "../collectives.js";
import type { Cubins } from "./compile.js";
import { checkKvPair, checkWeightFormat, effectiveCache, type ActDType, type CacheDType } from "./dtypes.js";
import type { DecodeVariant } from "./attention.js";

import type { DeviceCollectives } from "./host-collectives.js";
import type { LinearMode } from "./linear.js";
import type { NcclIds, NcclPlace } from "./nccl.js";
import type { WeightPolicy } from "./weights.js";

export const PDL_ENV = "LLMRT_CUDA_PDL";
/** Under pdl "auto", CUDA-graph decode steps of at most this many rows launch overlapped. */
export const PDL_AUTO_ROWS = 8;

function pdlFromEnv(v: string | undefined): boolean | "auto" {
  return v === "1" ? true : v === "0" ? false : "auto";
}

export interface CudaBackendOptions {
  /** Activation type: default the engine's weight storage type (bf16 for dummy loading). */
  dtype?: ActDType;
  /** Linear-layer weights: "same" (the activation type, default), int8, int4, int4 with zero points (i4z) or fp8 (weight-only). */
  weightFormat?: "same" | "i8" | "i4" | "i4z" | "fp8";
  /** int4 / i4z scale group along K (default 128). */
  int4GroupSize?: number;
  /** KV cache storage (default: the KvCacheShape's dtype, else the activation type); fp8 needs sm_89+. */
  kvDtype?: CacheDType;
  /** "dummy": weights missing from the map are random, generated on the device (default "auto": all must be given). */
  loadFormat?: "auto" | "dummy";
  /** Seed of dummy weights (default 0). */
  seed?: number;
  /** Cubins for this GPU; default: the engine dir's (engineDir), else compiled here with nvcc or NVRTC, cached. */
  cubins?: Cubins;
  /** The engine dir whose kernels/ to load. */
  engineDir?: string;
  /** Capture CUDA graphs for decode steps (default true). */
  cudaGraphs?: boolean;
  /** Largest decode batch captured as a graph (default 256). */
  maxGraphBatch?: number;
  /** Block-table length the graphs are captured for (default: 4096 tokens' worth). */
  graphTableStride?: number;
  /** Longest block table any step may have (default: 32768 tokens' worth). */
  maxBlocksPerSeq?: number;
  /** Use cuBLASLt where found (default true). */
  cublasLt?: boolean;
  /** Force a matmul path (tests, the device check). */
  linear?: LinearMode;
  /** Time gemv / gemv4 / cuBLASLt per decode matmul shape at bind and keep the fastest (default: on a real GPU; off on the CPU emulator, whose timings mean nothing). */
  autotune?: boolean;
  /** Timed calls per tactic candidate (default 10). */
  autotuneReps?: number;
  /** Decode attention kernel: "auto" (timed at bind with the tactics; "direct" where not timed), or forced. */
  decodeAttention?: "auto" | DecodeVariant;
  /** Run every attention row through the decode kernel (tests). */
  decodeAttentionOnly?: boolean;
  /**
   * Programmatic dependent launch (Hopper and later): each of llmrt's kernels may start
   * while the previous one drains, waiting in the kernel for its inputs; a GEMV prefetches
   * its weights into L2 meanwhile. "auto" (default): on for CUDA-graph decode steps of at most
   * PDL_AUTO_ROWS rows, where it measured 3-10% faster a step (bench/RESULTS.md), off for
   * larger and prefill steps (a 64-row TinyLlama step was 7-9% slower with it). The
   * LLMRT_CUDA_PDL variable ("1" on, "0" off) overrides the default.
   */
  pdl?: boolean | "auto";
  /** KV blocks: the requested number (default), or "fill" a share of free GPU memory. */
  kvBlocks?: "requested" | "fill";
  /** Share of free GPU memory to use (default 0.9). */
  gpuMemoryUtilization?: number;
  /**
   * A sharded engine's rank: the communicator its collective ops call, host-staged
   * (host-collectives.ts); with `deviceComm` (NCCL, nccl.ts) they run on the stream instead.
   */
  comm?: Collectives;
  deviceComm?: DeviceCollectives;
  /** NCCL for a rank with its own GPU: the ids the main thread made and the rank's place (nccl.ts; joined at the first bind). */
  nccl?: { ids: NcclIds; place: NcclPlace };
  /** The GPU to bind to (default 0; a rank uses rank % deviceCount). */
  deviceOrdinal?: number;
  /** Where the bind's line on packed weights goes (which stay packed, which were dequantized and why); default stderr. */
  onLog?: (line: string) => void;
}

export interface BoundSettings {
  act: ActDType;
  cache: CacheDType;
  policy: WeightPolicy;
  linearMode: LinearMode;
  autotune: boolean;
  autotuneReps: number;
  /** The device is the CPU emulator (tests): timings mean nothing there. */
  emulated: boolean;
  decodeOnly: boolean;
  decodeAttention: "auto" | DecodeVariant;
  pdl: boolean | "auto";
  graphs: boolean;
  maxBucket: number;
  graphTableStride: number;
  maxBlocksPerSeq: number;
  dummy: { seed: number } | null;
  kvBlocks: "requested" | "fill";
  utilization: number;
  comm?: Collectives;
  deviceComm?: DeviceCollectives;
  log: (line: string) => void;
}

/**
 * The activation type an engine's weights were stored in: all values of its first float
 * matrix (a matmul's, else the embedding table: a --quant engine's matmuls arrive packed)
 * exact in bf16 -> bf16, else exact in f16 -> f16, else f32.
 */
export function inferActDType(g: Graph, w: WeightMap): ActDType {
  const matrices = g.ops.flatMap((o) => (o.op === "matmul" ? [o.w] : o.op === "embedding" ? [o.table] : []));
  const first = matrices.find((name) => w.has(name));
  const values = first ? w.get(first) : undefined;
  if (!values) return "bf16";
  const n = Math.min(values.length, 4096);
  const exact = (enc: (x: number) => number, dec: (h: number) => number) => {
    for (let i = 0; i < n; i++) if (dec(enc(values[i])) !== values[i]) return false;
    return true;
  };
  if (exact(f32ToBf16, bf16ToF32)) return "bf16";
  if (exact(f32ToF16, f16ToF32)) return "f16";
  return "f32";
}

export function resolveSettings(o: CudaBackendOptions, g: Graph, w: WeightMap, kvDtype: KvDType | undefined, blockSize: number, smArch: [number, number], emulated = false): BoundSettings {
  const act = o.dtype ?? (o.loadFormat === "dummy" && w.size === 0 ? "bf16" : inferActDType(g, w));
  // the int8 KV cache (scales per head and slot) has reference and cpu kernels only
  if (kvDtype === "int8" && o.kvDtype === undefined) throw new OptionError("--kv-dtype", "an int8 KV cache is not built for the cuda target (it runs on --target cpu and reference)", "use --kv-dtype bf16 or f16, or fp8 on sm_89+ GPUs");
  const cache = effectiveCache(act, o.kvDtype ?? (kvDtype as Exclude<KvDType, "int8"> | undefined) ?? act);
  checkKvPair(act, cache);
  if (cache === "fp8" && smArch[0] * 10 + smArch[1] < 89) throw new OptionError("--kv-dtype", "an fp8 KV cache needs an Ada or Hopper GPU (sm_89+)");
  const linear = o.weightFormat ?? "same";
  if (linear !== "same") checkWeightFormat(act, linear);
  const int4Group = o.int4GroupSize ?? 128;
  if (int4Group % 32 !== 0) throw new OptionError("int4GroupSize", `must be a multiple of 32, got ${int4Group}`);
  return {
    act,
    cache,
    policy: { act, linear, int4Group },
    linearMode: o.linear ?? "auto",
    autotune: o.autotune ?? !emulated,
    autotuneReps: Math.max(1, o.autotuneReps ?? 10),
    emulated,
    decodeOnly: o.decodeAttentionOnly ?? false,
    decodeAttention: o.decodeAttention ?? "auto",
    pdl: o.pdl ?? pdlFromEnv(process.env[PDL_ENV]),
    graphs: o.cudaGraphs ?? true,
    maxBucket: o.maxGraphBatch ?? 256,
    graphTableStride: o.graphTableStride ?? Math.ceil(4096 / blockSize),
    maxBlocksPerSeq: o.maxBlocksPerSeq ?? Math.ceil(32768 / blockSize),
    dummy: o.loadFormat === "dummy" ? { seed: o.seed ?? 0 } : null,
    kvBlocks: o.kvBlocks ?? "requested",
    utilization: o.gpuMemoryUtilization ?? 0.9,
    comm: o.comm,
    deviceComm: o.deviceComm,
    log: o.onLog ?? ((line) => console.error(`llmrt: ${line}`)),
  };
}

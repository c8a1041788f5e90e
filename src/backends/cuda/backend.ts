/**
 * The CUDA backend: binds a graph to the first GPU. Importing this module touches no
 * native code; the driver is opened at the first bind(), and a machine without one gets
 * CudaUnavailableError (where llmrt looked, LLMRT_CUDA_LIB_DIR to point it elsewhere).
 *
 * Kernels come as cubins for the GPU's architecture: from the engine dir when it was
 * built for the cuda target, else compiled here (nvcc, or NVRTC) and cached.
 */
import type { Backend, BoundGraph, KvCacheShape, PackedWeightMap, WeightMap } from "../backend.js";
import type { PackedDType } from "../../quant/packed.js";
import type { Graph } from "../../graph/ir.js";
import { planMemory, type MemoryPlan } from "../../graph/passes/plan-memory.js";
import { CudaError, CudaUnavailableError } from "../../errors.js";
import { CudaBound } from "./bound.js";
import { compileWithNvccSync, compileWithNvrtc, findNvcc, type Cubins } from "./compile.js";
import { CublasLt } from "./cublaslt.js";
import { CudaDriver } from "./driver.js";
import { engineArchs, readEngineCubins } from "./engine-files.js";
import { KernelModules } from "./modules.js";
import { NcclCollectives } from "./nccl.js";
import { Nvrtc } from "./nvrtc.js";
import { resolveSettings, type CudaBackendOptions } from "./settings.js";

/** A folder with kernels/<unit>.<arch>.cubin to use when the engine has none (bench/device-prep.sh makes one). */
export const CUBINS_ENV = "LLMRT_CUDA_CUBINS";

/** Capacity of a bind without a memory plan (tests and tools). */
const DEFAULT_CAPACITY = { T: 512, R: 512 };

export class CudaBackend implements Backend {
  readonly name = "cuda";
  private driver: CudaDriver | null = null;
  private kernels: KernelModules | null = null;
  private nccl: NcclCollectives | null = null;

  constructor(readonly options: CudaBackendOptions = {}) {}

  /** Opens the driver (once); throws CudaUnavailableError where there is no GPU. */
  device(): CudaDriver {
    this.driver ??= CudaDriver.open(undefined, this.options.deviceOrdinal ?? 0);
    return this.driver;
  }

  /** The cubins for this GPU: given, the engine dir's, or compiled here (nvcc first, then NVRTC), cached. */
  cubinsFor(arch: string, compileOnly = false): Cubins {
    if (this.options.cubins && !compileOnly) return this.options.cubins;
    const dir = this.options.engineDir;
    const stored = dir && !compileOnly ? readEngineCubins(dir, arch) : null;
    if (stored) return stored;
    const prepared = process.env[CUBINS_ENV] && !compileOnly ? readEngineCubins(process.env[CUBINS_ENV]!, arch) : null;
    if (prepared) return prepared;
    if (dir && !compileOnly) {
      const have = engineArchs(dir);
      if (have.length) console.error(`llmrt: the engine has kernels for ${have.join(", ")}, this GPU is ${arch}: compiling them (rebuild with --gpu-arch ${arch} to skip this)`);
    }
    const nvcc = findNvcc();
    if (nvcc) return compileWithNvccSync(arch, nvcc);
    const nvrtc = Nvrtc.tryOpen();
    if (nvrtc) return compileWithNvrtc(arch, nvrtc);
    throw new CudaUnavailableError(`no cubins for ${arch}, and neither nvcc nor NVRTC is here to compile them`, [], "build the engine with --target cuda --gpu-arch " + arch + " where nvcc is installed, or install NVRTC");
  }

  /**
   * The loaded kernels (one set per backend, shared by its bound graphs). Cubins a driver
   * refuses (built by a newer nvcc than the driver knows) are recompiled here once.
   */
  modules(): KernelModules {
    if (!this.kernels) {
      const d = this.device();
      const stream = d.createStream();
      try {
        this.kernels = new KernelModules(d, this.cubinsFor(d.arch), stream);
      } catch (e) {
        if (!(e instanceof CudaError) || e.call !== "cuModuleLoadData" || this.options.cubins) throw e;
        console.error(`llmrt: the driver refused the engine's kernels (${e.statusName}); compiling them for ${d.arch} here`);
        this.kernels = new KernelModules(d, this.cubinsFor(d.arch, true), stream);
      }
    }
    return this.kernels;
  }

  /** Packed engine weights bind hands to the device as they are where the layout is a device format (packed-upload.ts), else dequantizes. */
  readonly packedDTypes: readonly PackedDType[] = ["int8", "int4"];

  bind(graph: Graph, weights: WeightMap, kv: KvCacheShape, plan?: MemoryPlan, packed?: PackedWeightMap): CudaBound & BoundGraph {
    const d = this.device();
    const k = this.modules();
    const settings = resolveSettings(this.options, graph, weights, kv.dtype, kv.blockSize, d.info.computeCapability, /emulator/i.test(d.info.name));
    const lt = this.options.cublasLt === false ? null : CublasLt.tryOpen((bytes) => d.alloc(bytes));
    if (this.options.nccl) settings.deviceComm = this.ncclComm(d, k);
    return new CudaBound(d, k, lt, graph, weights, kv, plan ?? planMemory(graph, DEFAULT_CAPACITY), settings, packed);
  }

  /** Joins the NCCL communicators once, on this thread's GPU and the kernels' stream (UNRUN: see nccl.ts). */
  private ncclComm(d: CudaDriver, k: KernelModules): NcclCollectives {
    const { ids, place } = this.options.nccl!;
    const copy2d = (dst: number, dstPitch: number, src: number, srcPitch: number, rowBytes: number, rows: number) => {
      for (let r = 0; r < rows; r++) d.dtodAsync(dst + r * dstPitch, src + r * srcPitch, rowBytes, k.stream);
    };
    this.nccl ??= NcclCollectives.init(ids, place, k.stream, (bytes) => d.alloc(bytes), copy2d);
    return this.nccl;
  }
}

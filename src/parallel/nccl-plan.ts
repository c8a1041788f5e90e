/**
 * Whether a cuda-target sharded engine's ranks use NCCL: only where every rank has its
 * own GPU and libnccl is found (LLMRT_NCCL=0 turns it off); then the main thread makes
 * the ncclUniqueIds the ranks join with. Otherwise the ranks stage their collectives
 * through the host (backends/cuda/host-collectives.ts), which is correct anywhere.
 */
import { CudaDriver } from "../backends/cuda/driver.js";
import { findLibrary, systemSearchEnv, type SearchEnv } from "../backends/cuda/libs.js";
import { ncclIds, type NcclIds } from "../backends/cuda/nccl.js";

export function useNccl(world: number, env: NodeJS.ProcessEnv, devices: () => number, search: SearchEnv = systemSearchEnv): boolean {
  if (world < 2 || env.LLMRT_NCCL === "0") return false;
  if (!findLibrary("nccl", search).path) return false;
  try {
    return devices() >= world;
  } catch {
    return false; // no GPU: the ranks report that themselves
  }
}

/** The NCCL ids for a tp x pp world, or undefined for the host-staged path. */
export function ncclPlan(tp: number, pp: number): NcclIds | undefined {
  return useNccl(tp * pp, process.env, () => CudaDriver.countDevices()) ? ncclIds(pp) : undefined;
}

/**
 * The NCCL seam without NCCL (nccl.ts is unrun: no multi-GPU machine so far): where
 * libnccl is found, the enum values handed to it, and when the ranks of a cuda-target
 * sharded engine use it rather than host-staged collectives.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findLibrary, type SearchEnv } from "../../src/backends/cuda/libs.js";
import { NCCL_SUM, NCCL_TYPE, NCCL_UNIQUE_ID_BYTES, openNccl } from "../../src/backends/cuda/nccl.js";
import { CudaUnavailableError } from "../../src/errors.js";
import { useNccl } from "../../src/parallel/nccl-plan.js";

function fakeEnv(files: string[], over: Partial<SearchEnv> = {}): SearchEnv {
  const set = new Set(files);
  return { env: {}, exists: (p) => set.has(p), ldconfig: () => "", pythonNvidiaDirs: () => [], list: () => [], ...over };
}

describe("NCCL discovery", () => {
  test("LLMRT_NCCL_LIB first, then LLMRT_CUDA_LIB_DIR and the usual folders, last Python's nvidia/nccl/lib", () => {
    const files = ["/own/libnccl.so.2", "/cuda/libnccl.so.2", "/site/nvidia/nccl/lib", "/site/nvidia/nccl/lib/libnccl.so.2"];
    const s = fakeEnv(files, { env: { LLMRT_NCCL_LIB: "/own", LLMRT_CUDA_LIB_DIR: "/cuda" }, pythonNvidiaDirs: () => ["/site/nvidia"], list: () => ["nccl"] });
    assert.equal(findLibrary("nccl", s).path, "/own/libnccl.so.2");
    assert.equal(findLibrary("nccl", { ...s, env: { LLMRT_CUDA_LIB_DIR: "/cuda" } }).path, "/cuda/libnccl.so.2");
    assert.equal(findLibrary("nccl", { ...s, env: {} }).path, "/site/nvidia/nccl/lib/libnccl.so.2");
    // LLMRT_NCCL_LIB is NCCL's alone
    assert.equal(findLibrary("cublasLt", fakeEnv(["/own/libcublasLt.so.12"], { env: { LLMRT_NCCL_LIB: "/own" } })).path, null);
  });

  test("not found: a typed error naming where it looked and the variable to set", () => {
    assert.throws(() => openNccl(fakeEnv([], { env: { LLMRT_NCCL_LIB: "/nowhere" } })), (e: Error) => e instanceof CudaUnavailableError && /libnccl\.so\.2/.test(e.message) && /LLMRT_NCCL_LIB/.test(String((e as CudaUnavailableError).hint)));
  });
});

test("ncclDataType_t / ncclRedOp_t values are nccl.h's", () => {
  assert.deepEqual(NCCL_TYPE, { f32: 7, f16: 6, bf16: 9 }); // ncclFloat32, ncclFloat16, ncclBfloat16
  assert.equal(NCCL_SUM, 0);
  assert.equal(NCCL_UNIQUE_ID_BYTES, 128);
});

test("ranks use NCCL only with a GPU each and the library found; else host-staged", () => {
  const nccl = fakeEnv(["/n/libnccl.so.2"], { env: { LLMRT_NCCL_LIB: "/n" } });
  assert.equal(useNccl(2, {}, () => 2, nccl), true);
  assert.equal(useNccl(4, {}, () => 2, nccl), false, "fewer GPUs than ranks (the emulator has 1)");
  assert.equal(useNccl(2, { LLMRT_NCCL: "0" }, () => 8, nccl), false, "turned off");
  assert.equal(useNccl(2, {}, () => 8, fakeEnv([])), false, "no libnccl");
  assert.equal(useNccl(1, {}, () => 8, nccl), false, "one rank has nothing to talk to");
  assert.equal(useNccl(2, {}, () => { throw new Error("no GPU"); }, nccl), false);
});

/**
 * Without a GPU the CUDA backend still imports, and using it fails with a typed error
 * that says what is missing, where llmrt looked and which variable points it elsewhere.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CudaUnavailableError } from "../../src/errors.js";
import { findLibrary } from "../../src/backends/cuda/libs.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { caseModel, MODEL_VARIANTS } from "../../bench/device/compare.js";

const tiny = () => caseModel({ name: "e", config: MODEL_VARIANTS.llama_gqa, dtype: "fp32", tol: 0 }, 8);
const kvOf = (c: ReturnType<typeof tiny>["config"]) => ({ numLayers: c.numLayers, numBlocks: 4, blockSize: 16, numKvHeads: c.numKvHeads, headDim: c.headDim });

test("importing the backend needs no driver; binding without one names the places searched and LLMRT_CUDA_LIB_DIR", async (t) => {
  process.env.LLMRT_CUDA_LIB_DIR = "/nonexistent/cuda-libs";
  if (findLibrary("cuda").path) {
    t.skip(`this machine has a CUDA driver (${findLibrary("cuda").path})`);
    return;
  }
  const { CudaBackend } = await import("../../src/backends/cuda/backend.js");
  const { plan, weights, config } = tiny();
  assert.throws(
    () => new CudaBackend().bind(plan.graph, weights, kvOf(config), plan.memory),
    (e: Error) =>
      e instanceof CudaUnavailableError &&
      e.code === "cuda_unavailable" &&
      /no CUDA driver \(libcuda\.so\.1\) was found/.test(e.message) &&
      e.message.includes("/nonexistent/cuda-libs") &&
      e.message.includes("ldconfig -p") &&
      e.message.includes("LLMRT_CUDA_LIB_DIR"),
  );
});

test("a driver that sees no GPU is reported as such", { skip: emulatorUnavailable() ?? false }, async () => {
  process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
  process.env.LLMRT_EMU_NO_DEVICE = "1";
  const { CudaDriver } = await import("../../src/backends/cuda/driver.js");
  assert.throws(() => CudaDriver.open(), (e: Error) => e instanceof CudaUnavailableError && /no CUDA-capable GPU is visible/.test(e.message) && /CUDA_VISIBLE_DEVICES/.test(e.message));
});

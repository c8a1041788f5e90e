/**
 * Builds (or finds cached) the CPU emulator of the CUDA driver and prints its folder, for
 * dry runs of bench/device-check.sh without a GPU:
 *   LLMRT_CUDA_LIB_DIR=$(npx tsx bench/device/emu-dir.ts) ... bash bench/device-check.sh --quick
 */
import { buildEmulator } from "../../src/backends/cuda/emu/build-emu.js";

buildEmulator().then((dir) => console.log(dir));

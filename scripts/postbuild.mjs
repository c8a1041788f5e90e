// After tsc: makes the CLI entry executable (npm links it as the `llmrt` bin) and
// copies the server's static chat page next to the compiled server.
import { chmodSync, cpSync, existsSync } from "node:fs";
const bin = "dist/src/cli/main.js";
if (existsSync(bin)) chmodSync(bin, 0o755);
cpSync("src/server/web", "dist/src/server/web", { recursive: true });
// the CUDA backend compiles its kernel sources (nvcc or NVRTC) at engine build or load
cpSync("src/backends/cuda/kernels", "dist/src/backends/cuda/kernels", { recursive: true });
cpSync("src/backends/cuda/emu", "dist/src/backends/cuda/emu", { recursive: true, filter: (p) => !p.endsWith(".ts") });

/**
 * Finds and compiles the kernel module: the relaxed-SIMD build where the runtime accepts
 * it (Node 20 needs V8's --experimental-wasm-relaxed-simd, which we turn on at run time;
 * Node 22+ has it by default), else the plain SIMD128 build. The .wasm files are built
 * by scripts/build-wasm.mjs into dist/src/backends/cpu/wasm; running from source (tsx),
 * a missing or stale build is made on demand.
 *
 * Node 20's baseline wasm compiler (Liftoff) miscompiles parts of the pool protocol
 * (atomics around loops: results and counters come out wrong until TurboFan tiers up),
 * so the module is compiled with Liftoff off: optimized code from the first call.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { LlmrtError } from "../../errors.js";
import { wasm, type WasmModule } from "./wasm-api.js";

export type SimdLevel = "relaxed" | "simd";

export interface KernelModule {
  module: WasmModule;
  simd: SimdLevel;
}

const here = new URL(".", import.meta.url);
const fromSource = import.meta.url.endsWith(".ts");

function wasmPath(file: string): string {
  // dist: next to this file; source: the repo's dist build
  const url = fromSource ? new URL(`../../../dist/src/backends/cpu/wasm/${file}`, here) : new URL(`./wasm/${file}`, here);
  return fileURLToPath(url);
}

function ensureBuilt(): void {
  if (!fromSource) return;
  const script = fileURLToPath(new URL("../../../scripts/build-wasm.mjs", here));
  if (existsSync(script)) execFileSync(process.execPath, [script], { stdio: ["ignore", "ignore", "inherit"] });
}

function read(file: string): Uint8Array {
  const p = wasmPath(file);
  if (!existsSync(p)) {
    throw new LlmrtError("cpu_backend", `CPU kernels not found at ${p}`, "build them: npm run build (or node scripts/build-wasm.mjs)");
  }
  return readFileSync(p);
}

let cached: KernelModule | undefined;

/** The kernel module for this runtime (compiled once per process). `prefer` forces a level. */
export function kernelModule(prefer?: SimdLevel): KernelModule {
  if (cached && (!prefer || cached.simd === prefer)) return cached;
  ensureBuilt();
  v8.setFlagsFromString("--no-liftoff");
  let result: KernelModule | undefined;
  if (prefer !== "simd") {
    const bytes = read("kernels.relaxed.wasm");
    if (!wasm.validate(bytes)) v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
    if (wasm.validate(bytes)) result = { module: new wasm.Module(bytes), simd: "relaxed" };
  }
  result ??= { module: new wasm.Module(read("kernels.simd.wasm")), simd: "simd" };
  if (!prefer) cached = result;
  return result;
}

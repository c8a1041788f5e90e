/**
 * koffi, loaded on first use (so that importing the CUDA backend never fails, even where
 * koffi's native module is missing), and the few helpers the bindings share.
 */
import { createRequire } from "node:module";
import { CudaUnavailableError } from "../../errors.js";

// koffi's types are loose where it matters here (functions declared from C prototypes).
/* eslint-disable @typescript-eslint/no-explicit-any */
export type Koffi = any;
export type NativeFn = (...args: any[]) => any;
export type NativeLib = { func(proto: string): NativeFn; unload?(): void };

let koffi: Koffi | null = null;

export function loadKoffi(): Koffi {
  if (koffi) return koffi;
  try {
    koffi = createRequire(import.meta.url)("koffi");
  } catch (e) {
    throw new CudaUnavailableError(`the FFI module koffi could not be loaded: ${(e as Error).message}`, [], "reinstall dependencies (npm ci) so that koffi's native module for this platform is present");
  }
  return koffi;
}

/** Opens a shared library, or throws CudaUnavailableError naming it. */
export function openLibrary(path: string): NativeLib {
  const k = loadKoffi();
  try {
    return k.load(path) as NativeLib;
  } catch (e) {
    throw new CudaUnavailableError(`${path} exists but could not be loaded: ${(e as Error).message}`);
  }
}

/** Binds the first of several prototypes whose symbol the library exports (e.g. a _v2 name, then the plain one). */
export function bindFirst(lib: NativeLib, protos: string[]): NativeFn {
  let last: unknown;
  for (const p of protos) {
    try {
      return lib.func(p);
    } catch (e) {
      last = e;
    }
  }
  throw new CudaUnavailableError(`none of [${protos.map((p) => /(\w+)\s*\(/.exec(p)?.[1]).join(", ")}] is exported: ${(last as Error)?.message}`, [], "the library is older than llmrt supports; update the NVIDIA driver or CUDA libraries");
}

/** A device or host address as a Number (addresses stay below 2^53). */
export function addr(v: number | bigint | null): number {
  return v === null ? 0 : Number(v);
}

/**
 * NVRTC through koffi: compiles a kernel unit to a cubin for one GPU architecture at run
 * time, with the kernel headers passed in memory. Used where no cubin for the GPU was
 * stored in the engine and nvcc is absent (pip-installed CUDA has NVRTC, not nvcc).
 */
import { CudaError, CudaUnavailableError } from "../../errors.js";
import { bindFirst, openLibrary, type NativeFn } from "./ffi.js";
import { findLibrary, LIB_DIR_ENV, systemSearchEnv, type SearchEnv } from "./libs.js";

const PROTOS: Record<string, string[]> = {
  version: ["int nvrtcVersion(_Out_ int *major, _Out_ int *minor)"],
  create: [
    "int nvrtcCreateProgram(_Out_ void **prog, const char *src, const char *name, int numHeaders, const char **headers, const char **includeNames)",
  ],
  compile: ["int nvrtcCompileProgram(void *prog, int numOptions, const char **options)"],
  logSize: ["int nvrtcGetProgramLogSize(void *prog, _Out_ size_t *n)"],
  log: ["int nvrtcGetProgramLog(void *prog, _Out_ uint8_t *log)"],
  cubinSize: ["int nvrtcGetCUBINSize(void *prog, _Out_ size_t *n)"],
  cubin: ["int nvrtcGetCUBIN(void *prog, _Out_ uint8_t *cubin)"],
  destroy: ["int nvrtcDestroyProgram(_Inout_ void **prog)"],
};

let instance: Nvrtc | null | undefined;

export class Nvrtc {
  private constructor(
    private readonly fn: Record<string, NativeFn>,
    readonly path: string,
  ) {}

  /** NVRTC if present, else null (callers fall back to nvcc or stored cubins). */
  static tryOpen(search: SearchEnv = systemSearchEnv): Nvrtc | null {
    if (instance !== undefined) return instance;
    const found = findLibrary("nvrtc", search);
    if (!found.path) return (instance = null);
    const lib = openLibrary(found.path);
    instance = new Nvrtc(Object.fromEntries(Object.entries(PROTOS).map(([k, p]) => [k, bindFirst(lib, p)])), found.path);
    return instance;
  }

  static open(search: SearchEnv = systemSearchEnv): Nvrtc {
    const n = Nvrtc.tryOpen(search);
    if (!n) throw new CudaUnavailableError("NVRTC (libnvrtc.so) was not found", findLibrary("nvrtc", search).searched, `install the CUDA toolkit or pip's nvidia-cuda-nvrtc, or set ${LIB_DIR_ENV}`);
    return n;
  }

  version(): [number, number] {
    const a = [0],
      b = [0];
    this.fn.version(a, b);
    return [a[0], b[0]];
  }

  /**
   * Compiles `source` (named `name`) for `arch` ("sm_90"); `headers` maps include names to
   * their text. Returns the cubin; a compile error throws CudaError with the log.
   */
  compile(name: string, source: string, headers: Map<string, string>, arch: string, options: string[] = []): Uint8Array {
    const prog: unknown[] = [null];
    const names = [...headers.keys()];
    this.check("nvrtcCreateProgram", this.fn.create(prog, source, name, names.length, names.map((n) => headers.get(n)!), names));
    const p = prog[0];
    try {
      const opts = [`--gpu-architecture=${arch}`, "-std=c++17", ...options];
      const r = this.fn.compile(p, opts.length, opts) as number;
      if (r !== 0) {
        const n = [0];
        this.fn.logSize(p, n);
        const log = Buffer.alloc(Number(n[0]));
        this.fn.log(p, log);
        throw new CudaError("nvrtcCompileProgram", r, "NVRTC_ERROR_COMPILATION", `${name} for ${arch}:\n${log.toString("utf8").replace(/\0+$/, "")}`);
      }
      const n = [0];
      this.check("nvrtcGetCUBINSize", this.fn.cubinSize(p, n));
      const out = new Uint8Array(Number(n[0]));
      this.check("nvrtcGetCUBIN", this.fn.cubin(p, out));
      return out;
    } finally {
      this.fn.destroy([p]);
    }
  }

  private check(call: string, r: number): void {
    if (r !== 0) throw new CudaError(call, r, `nvrtcResult ${r}`);
  }
}

/**
 * A system BLAS for the CPU backend's big matmuls (prefill, batched decode), reached
 * through koffi: OpenBLAS's cblas_sgemm runs 3-7x faster than the WebAssembly SIMD128
 * kernels on prefill-sized products (AVX2 / AVX-512, its own threads), so where the
 * library is installed the backend hands it the matmuls with enough rows; the WASM
 * kernels stay the portable path and the one for small steps.
 *
 * LLMRT_BLAS picks the library: unset or "auto" tries OpenBLAS's usual names, "off"
 * (or "0") turns the path off, anything else is a library file to load (a missing or
 * unusable one is an error, not a silent fallback). OPENBLAS_CORETYPE and
 * OPENBLAS_NUM_THREADS are OpenBLAS's own and are left as the user set them;
 * OPENBLAS_THREAD_TIMEOUT too, but where it is unset we set it before loading (below).
 *
 * Memory: the operands are views of the backend's shared WebAssembly memory; koffi
 * passes a typed array's address without copying, so sgemm reads weights and writes
 * activations in place.
 */
import { createRequire } from "node:module";
import { LlmrtError } from "../../errors.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
type NativeFn = (...args: any[]) => any;

export const BLAS_ENV = "LLMRT_BLAS";
/** Names tried when LLMRT_BLAS is unset: the runtime package of each distribution. */
export const BLAS_LIBRARIES = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libopenblas.0.dylib"];

// CBLAS enum values
const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/** The library named by LLMRT_BLAS could not be used. */
export class BlasError extends LlmrtError {
  constructor(message: string) {
    super("cpu_blas", message, `set ${BLAS_ENV}=off to use the WebAssembly kernels only, or point it at an OpenBLAS library (Debian: apt-get install libopenblas0)`);
  }
}

export class Blas {
  private readonly sgemmFn: NativeFn;
  private readonly sgemvFn: NativeFn;
  private readonly setThreadsFn?: NativeFn;
  private threads = 0;
  /** What was loaded, e.g. "OpenBLAS 0.3.21 (Cooperlake) from libopenblas.so.0". */
  readonly description: string;

  constructor(lib: { func(proto: string): NativeFn }, file: string) {
    this.sgemmFn = lib.func("void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int)");
    this.sgemvFn = lib.func("void cblas_sgemv(int, int, int, int, float, const float *, int, const float *, int, float, float *, int)");
    this.setThreadsFn = optional(lib, "void openblas_set_num_threads(int)");
    const config = optional(lib, "const char *openblas_get_config()");
    const core = optional(lib, "const char *openblas_get_corename()");
    const version = config ? (/OpenBLAS [\d.]+/.exec(String(config()))?.[0] ?? "OpenBLAS") : "BLAS";
    this.description = `${version}${core ? ` (${String(core())})` : ""} from ${file}`;
  }

  /**
   * out [M, N] (row stride ldOut) = x [M, K] @ w [N, K]^T + beta * out, on `threads` threads.
   * Views must cover what they name; ldOut lets a caller fill a column block of a wider out.
   */
  sgemm(M: number, N: number, K: number, x: Float32Array, w: Float32Array, out: Float32Array, ldOut: number, beta: number, threads: number): void {
    if (x.length < M * K || w.length < N * K || out.length < (M - 1) * ldOut + N) throw new RangeError(`blas sgemm: views too short for [${M}, ${K}] x [${N}, ${K}]^T`);
    this.useThreads(threads);
    this.sgemmFn(ROW_MAJOR, NO_TRANS, TRANS, M, N, K, 1, x, K, w, K, beta, out, ldOut);
  }

  /**
   * out [M, N] = op(a) @ op(b) + beta * out, all row-major and packed, op(a) [M, L], op(b) [L, N]:
   * a is [M, L] or, with transA, [L, M]; b is [L, N] or, with transB, [N, L]. For products
   * other than sgemm's x @ w^T (calibration's gradients).
   */
  gemm(transA: boolean, transB: boolean, M: number, N: number, L: number, a: Float32Array, b: Float32Array, out: Float32Array, beta: number, threads: number): void {
    if (a.length < M * L || b.length < L * N || out.length < M * N) throw new RangeError(`blas gemm: views too short for [${M}, ${L}] x [${L}, ${N}]`);
    this.useThreads(threads);
    this.sgemmFn(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, M, N, L, 1, a, transA ? M : L, b, transB ? L : N, beta, out, N);
  }

  /**
   * out [M, N] (row stride ldOut) = alpha * a [M, L] (row stride lda) @ op(b) + beta * out, where
   * op(b) is b [L, N] (row stride ldb) or, with transB, b [N, L]^T: products of column slices of
   * wider row-major matrices (attention's heads, blas-attention.ts).
   */
  gemmStrided(transB: boolean, M: number, N: number, L: number, alpha: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, out: Float32Array, ldOut: number, beta: number, threads: number): void {
    const bNeeds = transB ? (N - 1) * ldb + L : (L - 1) * ldb + N;
    if (a.length < (M - 1) * lda + L || b.length < bNeeds || out.length < (M - 1) * ldOut + N) throw new RangeError(`blas gemm: strided views too short for [${M}, ${L}] x [${L}, ${N}]`);
    this.useThreads(threads);
    this.sgemmFn(ROW_MAJOR, NO_TRANS, transB ? TRANS : NO_TRANS, M, N, L, alpha, a, lda, b, ldb, beta, out, ldOut);
  }

  /** out [N] = w [N, K] @ x [K] + beta * out, on `threads` threads (one token: sgemm's packing would not pay). */
  sgemv(N: number, K: number, w: Float32Array, x: Float32Array, out: Float32Array, beta: number, threads: number): void {
    if (x.length < K || w.length < N * K || out.length < N) throw new RangeError(`blas sgemv: views too short for [${N}, ${K}] x [${K}]`);
    this.useThreads(threads);
    this.sgemvFn(ROW_MAJOR, NO_TRANS, N, K, 1, w, K, x, 1, beta, out, 1);
  }

  private useThreads(threads: number): void {
    if (threads === this.threads || !this.setThreadsFn) return;
    this.setThreadsFn(threads);
    this.threads = threads;
  }
}

function optional(lib: { func(proto: string): NativeFn }, proto: string): NativeFn | undefined {
  try {
    return lib.func(proto);
  } catch {
    return undefined;
  }
}

let loaded: { key: string; blas: Blas | undefined } | undefined;

/** The process's BLAS per LLMRT_BLAS (loaded once), or undefined where there is none or it is off. */
export function systemBlas(env: NodeJS.ProcessEnv = process.env): Blas | undefined {
  const want = (env[BLAS_ENV] ?? "auto").trim();
  if (loaded?.key === want) return loaded.blas;
  let blas: Blas | undefined;
  if (want === "off" || want === "0" || want === "false") blas = undefined;
  else if (want === "" || want === "auto") blas = tryLoad(BLAS_LIBRARIES);
  else {
    blas = tryLoad([want], (file, e) => {
      throw new BlasError(`${BLAS_ENV}=${file}: the library could not be loaded or lacks cblas_sgemm (${e})`);
    });
  }
  loaded = { key: want, blas };
  return blas;
}

/**
 * OpenBLAS's idle threads spin 2^28 cycles (~0.1 s) after each call before they sleep.
 * Between its calls the pool's threads run kernels, and with as many threads as cores the
 * spinners take their cores: 16 sequences decoding on 2 threads ran 10% (f32) and 25%
 * (bf16, widened between calls) faster with the shortest spin, 2^4 cycles. Read by
 * OpenBLAS when it loads; a value the user set is kept.
 */
export const THREAD_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT";
const THREAD_TIMEOUT = "4";

function tryLoad(files: string[], fail?: (file: string, e: string) => never): Blas | undefined {
  process.env[THREAD_TIMEOUT_ENV] ??= THREAD_TIMEOUT;
  let koffi: any;
  try {
    koffi = createRequire(import.meta.url)("koffi");
  } catch (e) {
    if (fail) fail(files[0], `koffi could not be loaded: ${(e as Error).message}`);
    return undefined;
  }
  for (const file of files) {
    try {
      return new Blas(koffi.load(file), file);
    } catch (e) {
      if (fail) fail(file, (e as Error).message);
    }
  }
  return undefined;
}

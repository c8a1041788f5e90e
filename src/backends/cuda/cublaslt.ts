/**
 * cuBLASLt through koffi: out [M, N] = x [M, K] @ W [N, K]^T with f32 accumulation, for
 * BF16/FP16 weights and activations, and FP8 (e4m3) weights with activations quantized
 * per tensor (scales read from device memory). Row-major tensors are handed over as
 * their column-major transposes: D^T [N, M] = op_T(W) [N, K] x x^T [K, M], the "TN"
 * layout FP8 requires. One plan (descriptors + the heuristic's algorithm) per shape.
 */
import { CudaError } from "../../errors.js";
import { bindFirst, openLibrary, type NativeFn } from "./ffi.js";
import { findLibrary, systemSearchEnv, type SearchEnv } from "./libs.js";
import type { DevPtr, Ptr } from "./driver.js";

// cudaDataType, cublasComputeType_t and attribute numbers from cublasLt.h / library_types.h
export const CUDA_R = { f32: 0, f16: 2, bf16: 14, fp8: 28 } as const;
const CUBLAS_COMPUTE_32F = 68;
const DESC_TRANSA = 3;
const DESC_TRANSB = 4;
const DESC_A_SCALE_POINTER = 17;
const DESC_B_SCALE_POINTER = 18;
const PREF_MAX_WORKSPACE_BYTES = 1;
const OP_N = 0;
const OP_T = 1;
const HEURISTIC_RESULT_BYTES = 96; // cublasLtMatmulHeuristicResult_t: algo[64], size_t, int, float, int[4]

const PROTOS: Record<string, string[]> = {
  create: ["int cublasLtCreate(_Out_ void **handle)"],
  version: ["size_t cublasLtGetVersion()"],
  descCreate: ["int cublasLtMatmulDescCreate(_Out_ void **desc, int computeType, int scaleType)"],
  descSet: ["int cublasLtMatmulDescSetAttribute(void *desc, int attr, const void *buf, size_t size)"],
  descDestroy: ["int cublasLtMatmulDescDestroy(void *desc)"],
  layoutCreate: ["int cublasLtMatrixLayoutCreate(_Out_ void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld)"],
  layoutDestroy: ["int cublasLtMatrixLayoutDestroy(void *layout)"],
  prefCreate: ["int cublasLtMatmulPreferenceCreate(_Out_ void **pref)"],
  prefSet: ["int cublasLtMatmulPreferenceSetAttribute(void *pref, int attr, const void *buf, size_t size)"],
  prefDestroy: ["int cublasLtMatmulPreferenceDestroy(void *pref)"],
  heuristic: [
    "int cublasLtMatmulAlgoGetHeuristic(void *handle, void *desc, void *a, void *b, void *c, void *d, void *pref, int requested, _Out_ uint8_t *results, _Out_ int *returned)",
  ],
  matmul: [
    "int cublasLtMatmul(void *handle, void *desc, const float *alpha, uint64_t A, void *Adesc, uint64_t B, void *Bdesc, const float *beta, uint64_t C, void *Cdesc, uint64_t D, void *Ddesc, const uint8_t *algo, uint64_t workspace, size_t workspaceBytes, void *stream)",
  ],
};

export type LtType = keyof typeof CUDA_R;

export interface LtShape {
  M: number;
  N: number;
  K: number;
  /** Type of W (A) and of x (B): equal, or both fp8. */
  inType: LtType;
  outType: LtType;
}

interface Plan {
  desc: Ptr;
  a: Ptr;
  b: Ptr;
  d: Ptr;
  algo: Buffer;
}

let instance: CublasLt | null | undefined;

export class CublasLt {
  private readonly handle: Ptr;
  private readonly plans = new Map<string, Plan | null>();
  private readonly one = Float32Array.of(1);
  private readonly zero = Float32Array.of(0);
  private readonly pref: Ptr;

  private constructor(
    private readonly fn: Record<string, NativeFn>,
    readonly path: string,
    readonly workspace: DevPtr,
    readonly workspaceBytes: number,
  ) {
    this.handle = this.out("cublasLtCreate", (o) => fn.create(o));
    this.pref = this.out("cublasLtMatmulPreferenceCreate", (o) => fn.prefCreate(o));
    const ws = new BigUint64Array([BigInt(workspaceBytes)]);
    this.check("cublasLtMatmulPreferenceSetAttribute", fn.prefSet(this.pref, PREF_MAX_WORKSPACE_BYTES, ws, 8));
  }

  /** cuBLASLt if its library is found, else null (the backend's own GEMM kernels run). */
  static tryOpen(allocWorkspace: (bytes: number) => DevPtr, search: SearchEnv = systemSearchEnv): CublasLt | null {
    if (instance !== undefined) return instance;
    const found = findLibrary("cublasLt", search);
    if (!found.path) return (instance = null);
    const lib = openLibrary(found.path);
    const fn = Object.fromEntries(Object.entries(PROTOS).map(([k, p]) => [k, bindFirst(lib, p)]));
    const bytes = 32 << 20; // Hopper kernels want up to 32 MB
    instance = new CublasLt(fn, found.path, allocWorkspace(bytes), bytes);
    return instance;
  }

  version(): number {
    return Number(this.fn.version());
  }

  private check(call: string, r: number): void {
    if (r !== 0) throw new CudaError(call, r, `cublasStatus ${r}`);
  }

  private out(call: string, f: (o: unknown[]) => number): Ptr {
    const o: unknown[] = [null];
    this.check(call, f(o));
    return o[0] as Ptr;
  }

  /** The plan for a shape, or null where cuBLASLt offers no algorithm (callers fall back). */
  plan(s: LtShape, fp8Scales?: { a: DevPtr; b: DevPtr }): Plan | null {
    const key = this.key(s, fp8Scales);
    if (this.plans.has(key)) return this.plans.get(key)!;
    let plan: Plan | null = null;
    try {
      const fn = this.fn;
      const desc = this.out("cublasLtMatmulDescCreate", (o) => fn.descCreate(o, CUBLAS_COMPUTE_32F, CUDA_R.f32));
      const i32 = (v: number) => Int32Array.of(v);
      this.check("cublasLtMatmulDescSetAttribute", fn.descSet(desc, DESC_TRANSA, i32(OP_T), 4));
      this.check("cublasLtMatmulDescSetAttribute", fn.descSet(desc, DESC_TRANSB, i32(OP_N), 4));
      if (fp8Scales) {
        this.check("cublasLtMatmulDescSetAttribute", fn.descSet(desc, DESC_A_SCALE_POINTER, new BigUint64Array([BigInt(fp8Scales.a)]), 8));
        this.check("cublasLtMatmulDescSetAttribute", fn.descSet(desc, DESC_B_SCALE_POINTER, new BigUint64Array([BigInt(fp8Scales.b)]), 8));
      }
      const t = CUDA_R[s.inType];
      const a = this.out("cublasLtMatrixLayoutCreate", (o) => fn.layoutCreate(o, t, s.K, s.N, s.K));
      const b = this.out("cublasLtMatrixLayoutCreate", (o) => fn.layoutCreate(o, t, s.K, s.M, s.K));
      const d = this.out("cublasLtMatrixLayoutCreate", (o) => fn.layoutCreate(o, CUDA_R[s.outType], s.N, s.M, s.N));
      const results = Buffer.alloc(HEURISTIC_RESULT_BYTES);
      const n = [0];
      this.check("cublasLtMatmulAlgoGetHeuristic", fn.heuristic(this.handle, desc, a, b, d, d, this.pref, 1, results, n));
      plan = n[0] > 0 ? { desc, a, b, d, algo: results } : null;
    } catch {
      plan = null;
    }
    this.plans.set(key, plan);
    return plan;
  }

  /**
   * D = W x^T on `stream`; false if no plan exists for the shape or cuBLASLt refused it
   * (nothing was launched; the shape is then never offered again, callers fall back).
   */
  matmul(s: LtShape, w: DevPtr, x: DevPtr, out: DevPtr, stream: Ptr | null, fp8Scales?: { a: DevPtr; b: DevPtr }): boolean {
    const p = this.plan(s, fp8Scales);
    if (!p) return false;
    const r = this.fn.matmul(this.handle, p.desc, this.one, w, p.a, x, p.b, this.zero, out, p.d, out, p.d, p.algo, this.workspace, this.workspaceBytes, stream) as number;
    if (r !== 0) {
      console.error(`llmrt: cuBLASLt refused ${s.M}x${s.N}x${s.K} ${s.inType}->${s.outType} (status ${r}); using llmrt's GEMM for it`);
      this.plans.set(this.key(s, fp8Scales), null);
      return false;
    }
    return true;
  }

  private key(s: LtShape, fp8Scales?: { a: DevPtr; b: DevPtr }): string {
    return `${s.M}x${s.N}x${s.K}:${s.inType}:${s.outType}:${fp8Scales ? `${fp8Scales.a},${fp8Scales.b}` : ""}`;
  }
}

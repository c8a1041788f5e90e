/**
 * Which kernel computes a matmul, out [M, N] = x [M, K] @ W [N, K]^T (+ bias):
 *   M <= 8 and rows 16-byte tileable   gemv (bandwidth-bound decode; every weight format),
 *                                      or gemv4 / gemm_tc / cuBLASLt where the bind-time
 *                                      tactics (tactics.ts) timed them faster for this shape
 *   f32 activations                    gemm_f32
 *   bf16/f16 weights, cuBLASLt found   cuBLASLt (bias added after)
 *   fp8 weights, cuBLASLt found        activations quantized per tensor, cuBLASLt FP8
 *   otherwise                          gemm_tc (tensor cores, W dequantized in shared memory)
 * `mode` forces one path (tests and the device check compare them).
 */
import type { Arg } from "./args.js";
import type { CublasLt } from "./cublaslt.js";
import type { DevPtr } from "./driver.js";
import type { ActDType } from "./dtypes.js";
import type { KernelModules } from "./modules.js";
import type { DeviceWeight } from "./weights.js";

export type LinearMode = "auto" | "gemv" | "gemv4" | "gemm" | "cublas";

export const GEMV_MAX_M = 8;
/** Values per 16-byte weight load in gemv, by format. */
export const GEMV_VEC: Record<DeviceWeight["fmt"], number> = { f32: 4, bf16: 8, f16: 8, i8: 16, i4: 32, i4z: 32, fp8: 16 };

export interface LinearContext {
  k: KernelModules;
  act: ActDType;
  smCount: number;
  lt: CublasLt | null;
  mode: LinearMode;
  /** The path timed fastest at bind for this weight at M rows, if any (tactics.ts). */
  tactic?(w: DeviceWeight, outF32: boolean, M: number): LinearPath | undefined;
  /** Scratch for the FP8 path: x quantized [M, K] bytes, and two floats (amax, scale). */
  fp8Scratch(bytes: number): { xq: DevPtr; amax: DevPtr; scale: DevPtr };
}

export type LinearPath = "gemv" | "gemv4" | "gemm_f32" | "gemm_tc" | "cublas" | "cublas_fp8";

/** The path a matmul takes (before cuBLASLt is asked whether it has a plan). */
export function linearPath(c: Pick<LinearContext, "act" | "mode"> & { lt: unknown }, w: Pick<DeviceWeight, "fmt" | "cols">, M: number): LinearPath {
  const gemvOk = M <= GEMV_MAX_M && w.cols % GEMV_VEC[w.fmt] === 0;
  if (c.mode === "gemv" && gemvOk) return "gemv";
  if (c.mode === "gemv4" && gemvOk && c.act !== "f32") return "gemv4";
  if (c.mode === "auto" && gemvOk) return "gemv";
  if (c.act === "f32") return "gemm_f32";
  if (c.lt && c.mode !== "gemm" && w.fmt === c.act) return "cublas";
  if (c.lt && c.mode !== "gemm" && w.fmt === "fp8") return "cublas_fp8";
  return "gemm_tc";
}

/** The path launchLinear tries first: the bind-time tactic where one was timed, else the rule above. */
export function chosenPath(c: Pick<LinearContext, "act" | "mode" | "lt" | "tactic">, w: DeviceWeight, outF32: boolean, M: number): LinearPath {
  return (c.mode === "auto" ? c.tactic?.(w, outF32, M) : undefined) ?? linearPath(c, w, M);
}

function weightSuffix(act: ActDType, w: DeviceWeight): string {
  return w.fmt === act ? act : w.fmt;
}

/** Launches out = x W^T (+ bias); `outF32` writes float32 (the logits) instead of the activation type. */
export function launchLinear(c: LinearContext, out: DevPtr, outF32: boolean, x: DevPtr, w: DeviceWeight, bias: DevPtr, M: number): LinearPath {
  const N = w.rows,
    K = w.cols;
  const outSuffix = outF32 && c.act !== "f32" ? "_f32out" : "";
  let path = chosenPath(c, w, outF32, M);
  const outType = outF32 ? "f32" : c.act;
  if (path === "cublas" && c.lt!.matmul({ M, N, K, inType: c.act as "bf16" | "f16", outType }, w.ptr, x, out, c.k.stream)) {
    c.k.trace?.(`cublasLt ${N}x${K}`);
    if (bias) addBias(c, out, outF32, bias, M, N);
    return path;
  }
  if (path === "cublas_fp8") {
    const s = c.fp8Scratch(M * K);
    if (c.lt!.plan({ M, N, K, inType: "fp8", outType }, { a: w.scale, b: s.scale })) {
      // a kernel, not a memset, so that CUDA graphs capture it like the rest
      c.k.launch("fill_uniform_f32", [1, 1, 1], [32, 1, 1], [["ptr", s.amax], ["u64", 1], ["u64", 0], ["f32", 0], ["f32", 0]]);
      const grid: [number, number, number] = [Math.max(1, Math.min(Math.ceil((M * K) / 256), c.smCount * 16)), 1, 1];
      c.k.launch(`absmax_${c.act}`, grid, [256, 1, 1], [["ptr", s.amax], ["ptr", x], ["u64", M * K]]);
      c.k.launch(`quant_fp8_act_${c.act}`, grid, [256, 1, 1], [["ptr", s.xq], ["ptr", s.scale], ["ptr", x], ["ptr", s.amax], ["u64", M * K]]);
      if (c.lt!.matmul({ M, N, K, inType: "fp8", outType }, w.ptr, s.xq, out, c.k.stream, { a: w.scale, b: s.scale })) {
        c.k.trace?.(`cublasLt fp8 ${N}x${K}`);
        if (bias) addBias(c, out, outF32, bias, M, N);
        return path;
      }
    }
  }
  if (path === "cublas" || path === "cublas_fp8") path = "gemm_tc"; // no cuBLASLt plan for this shape
  const args: Arg[] = [["ptr", out], ["ptr", x], ["ptr", w.ptr], ["ptr", w.scale], ["i32", w.group], ["ptr", bias], ["i32", M], ["i32", N], ["i32", K]];
  if (w.fmt === "i4z") args.push(["ptr", w.zero]); // the i4z kernels' one extra argument (gemm.cu LINEAR_Z)
  const ws = weightSuffix(c.act, w);
  if (path === "gemv") c.k.launch(`gemv_${c.act}_${ws}${outSuffix}`, [Math.ceil(N / 8), 1, 1], [256, 1, 1], args);
  else if (path === "gemv4") c.k.launch(`gemv4_${c.act}_${ws}${outSuffix}`, [Math.ceil(N / 2), 1, 1], [256, 1, 1], args);
  else if (path === "gemm_f32") c.k.launch(`gemm_f32_${ws}`, [Math.ceil(N / 64), Math.ceil(M / 64), 1], [256, 1, 1], args);
  else c.k.launch(`gemm_tc_${c.act}_${ws}${outSuffix}`, [Math.ceil(N / 64), Math.ceil(M / 64), 1], [128, 1, 1], args);
  return path;
}

function addBias(c: LinearContext, out: DevPtr, outF32: boolean, bias: DevPtr, M: number, N: number): void {
  const grid: [number, number, number] = [Math.max(1, Math.min(Math.ceil((M * N) / 256), c.smCount * 16)), 1, 1];
  c.k.launch(`add_bias_${outF32 ? "f32" : c.act}`, grid, [256, 1, 1], [["ptr", out], ["ptr", bias], ["i32", M], ["i32", N]]);
}

/**
 * Element types on the device and the kernel-name suffixes they select. Activations are
 * f32, bf16 or f16; the KV cache may also be fp8 (e4m3, Hopper/Ada); linear-layer weights
 * may be int8, int4 or fp8 (weight-only quantization, dequantized inside the kernels;
 * int8 / int4 with f32 or bf16 activations, fp8 with bf16).
 */
import { OptionError } from "../../errors.js";

export type ActDType = "f32" | "bf16" | "f16";
export type CacheDType = ActDType | "fp8";
/** i4z: int4 with a zero point per group (one byte): packed asymmetric int4 engines (AWQ, GPTQ, --int4-asym), or weightFormat "i4z". */
export type WeightFormat = ActDType | "i8" | "i4" | "i4z" | "fp8";

export const ACT_DTYPES: readonly ActDType[] = ["f32", "bf16", "f16"];

export function actBytes(t: ActDType): number {
  return t === "f32" ? 4 : 2;
}

export function cacheBytes(t: CacheDType): number {
  return t === "fp8" ? 1 : actBytes(t);
}

/** Bytes of an [N, K] weight in `fmt` (int4: two per byte), without scales. */
export function weightBytes(fmt: WeightFormat, N: number, K: number): number {
  if (fmt === "i4" || fmt === "i4z") return Math.ceil((N * K) / 2);
  if (fmt === "i8" || fmt === "fp8") return N * K;
  return N * K * actBytes(fmt);
}

/** Floats of scale an [N, K] weight carries: one per row (fp8), per row and group (i4; i8, whose group is K for one per row). */
export function scaleCount(fmt: WeightFormat, N: number, K: number, group: number): number {
  if (fmt === "fp8") return N;
  if (fmt === "i8" || fmt === "i4" || fmt === "i4z") return N * (K / group);
  return 0;
}

/** Zero-point bytes an [N, K] weight carries: one per row and group (i4z). */
export function zeroCount(fmt: WeightFormat, N: number, K: number, group: number): number {
  return fmt === "i4z" ? N * (K / group) : 0;
}

/** Suffix of kernels over activations T with a KV cache C: "bf16", or "f32_bf16" where they differ. */
export function kvSuffix(act: ActDType, cache: CacheDType): string {
  return act === cache ? act : `${act}_${cache}`;
}

/** The (activation, cache) pairs the attention kernels are built for. */
export const KV_PAIRS: readonly [ActDType, CacheDType][] = [
  ["f32", "f32"],
  ["f32", "bf16"],
  ["f32", "f16"],
  ["bf16", "bf16"],
  ["bf16", "fp8"],
  ["f16", "f16"],
  ["f16", "fp8"],
];

export function checkKvPair(act: ActDType, cache: CacheDType): void {
  if (!KV_PAIRS.some(([a, c]) => a === act && c === cache)) {
    throw new OptionError("--kv-dtype", `a ${cache} KV cache with ${act} activations is not built for the cuda target`, `use ${act} or ${KV_PAIRS.filter(([a]) => a === act).map(([, c]) => c).join(", ")}`);
  }
}

/**
 * The KV cache type a requested one becomes: 16-bit activations never widen their cache
 * to f32 (twice the bytes for no gain over the values written), so f32 -> the activation type.
 */
export function effectiveCache(act: ActDType, requested: CacheDType): CacheDType {
  return act !== "f32" && requested === "f32" ? act : requested;
}

/** Quantized weight formats each activation type's linear kernels read (gemm.cu's instantiations). */
export const QUANT_WEIGHTS: Record<ActDType, readonly WeightFormat[]> = { bf16: ["i8", "i4", "i4z", "fp8"], f32: ["i8", "i4", "i4z"], f16: [] };

export function checkWeightFormat(act: ActDType, w: WeightFormat): void {
  const ok = w === act || QUANT_WEIGHTS[act].includes(w);
  if (!ok) throw new OptionError("--weight-format", `${w} weights with ${act} activations are not built for the cuda target`, `use ${[act, ...QUANT_WEIGHTS[act]].join(", ")}${act === "bf16" ? "" : ", or a bf16 engine (--dtype bf16) for every quantized format"}`);
}

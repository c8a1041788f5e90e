/**
 * Every kernel name the backend may launch, by the same rules the dispatch code builds
 * them with (dtypes.ts suffixes). Tests check each exists in the kernel units, so a
 * typo or a missing instantiation fails here rather than on a GPU.
 */
import { ACT_DTYPES, KV_PAIRS, kvSuffix } from "./dtypes.js";

export function allKernelNames(): string[] {
  const names: string[] = [];
  for (const a of ACT_DTYPES) {
    for (const k of ["embedding", "add", "mul", "silu", "silu_mul", "slice_cols", "gather_rows", "add_bias", "from_f32", "to_f32", "rmsnorm", "add_rmsnorm", "rope"]) names.push(`${k}_${a}`);
    names.push(`attn_combine_${a}`);
  }
  for (const [a, c] of KV_PAIRS) {
    const s = kvSuffix(a, c);
    names.push(`kv_write_${s}`, `qkv_rope_kv_${s}`, `attn_decode_${s}_d64`, `attn_decode_${s}_d128`);
    if (a === c) names.push(`attn_decode_${s}_d256`);
    if (c !== "f32") names.push(`attn_decode_sv_${s}_d64`, `attn_decode_sv_${s}_d128`, `attn_decode_tl_${s}_d64`, `attn_decode_tl_${s}_d128`);
    if (a !== "f32") names.push(`attn_prefill_${s}_d64`, `attn_prefill_${s}_d128`, `attn_decode_mma_${s}_d64`, `attn_decode_mma_${s}_d128`);
  }
  for (const w of ["f32", "i8", "i4", "i4z"]) names.push(`gemv_f32_${w}`, `gemm_f32_${w}`);
  const linear = (a: string, w: string) => [`gemv_${a}_${w}`, `gemv_${a}_${w}_f32out`, `gemv4_${a}_${w}`, `gemv4_${a}_${w}_f32out`, `gemm_tc_${a}_${w}`, `gemm_tc_${a}_${w}_f32out`];
  names.push(...linear("bf16", "bf16"), ...linear("f16", "f16"));
  for (const w of ["i8", "i4", "i4z", "fp8"]) names.push(...linear("bf16", w));
  names.push("argmax_split", "topk_split");
  names.push("quant_i8_rows", "quant_i4_groups", "quant_i4z_groups", "fill_bytes_const", "quant_fp8_tensor", "absmax_f32", "absmax_bf16", "absmax_f16", "quant_fp8_act_bf16", "quant_fp8_act_f16", "fill_bytes");
  for (const t of ["f32", "bf16", "f16", "fp8"]) names.push(`fill_uniform_${t}`);
  return names;
}

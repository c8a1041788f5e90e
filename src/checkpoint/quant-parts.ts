/**
 * The tensors of one AWQ / GPTQ linear as found in the safetensors headers (before any
 * byte is read), and the shape checks both formats share.
 */
import { CheckpointError } from "../errors.js";

/** One stored tensor: where it lives and what its header says. */
export interface QuantPart {
  file: string;
  /** The HF name, e.g. "model.layers.0.self_attn.q_proj.qweight". */
  name: string;
  /** As in the safetensors header: "I32", "F16", ... */
  dtype: string;
  shape: number[];
}

/** `<prefix>.qweight`, `.qzeros`, `.scales` and (GPTQ) `.g_idx` of the linear `<prefix>`. */
export interface QuantParts {
  prefix: string;
  qweight: QuantPart;
  qzeros: QuantPart;
  scales: QuantPart;
  gIdx?: QuantPart;
}

/** The words and values of the parts, read. */
export interface QuantData {
  /** qweight's int32 words, row-major as stored. */
  qweight: Int32Array;
  qzeros: Int32Array;
  /** float32 of the stored scales (f16 / bf16 widen exactly). */
  scales: Float32Array;
  gIdx?: Int32Array;
}

const INT_DTYPES = ["I32", "U32"];
const SCALE_DTYPES = ["F16", "BF16", "F32"];

/** Throws unless `p` has exactly `want` as its shape; `layout` says where the expectation comes from. */
export function expectShape(p: QuantPart, want: number[], layout: string): void {
  if (p.shape.length !== want.length || p.shape.some((d, i) => d !== want[i])) {
    throw new CheckpointError(p.file, `tensor ${p.name} has shape [${p.shape.join(", ")}], want [${want.join(", ")}] (${layout})`,
      "the checkpoint does not match its quantization_config (bits, group_size, format); re-download or re-export it");
  }
}

/** Throws unless the parts have the integer and float dtypes the formats store. */
export function expectDTypes(parts: QuantParts): void {
  for (const p of [parts.qweight, parts.qzeros, parts.gIdx]) {
    if (p && !INT_DTYPES.includes(p.dtype)) throw new CheckpointError(p.file, `tensor ${p.name} has dtype ${p.dtype}; AWQ / GPTQ store it as I32`);
  }
  if (!SCALE_DTYPES.includes(parts.scales.dtype)) {
    throw new CheckpointError(parts.scales.file, `tensor ${parts.scales.name} has dtype ${parts.scales.dtype}; want ${SCALE_DTYPES.join(", ")}`);
  }
}

/** Input groups of a row of `cols` columns; null group size = one group. */
export function groupCount(cols: number, groupSize: number | null): number {
  return groupSize === null ? 1 : Math.ceil(cols / groupSize);
}

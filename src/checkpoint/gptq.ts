/**
 * The GPTQ layout of AutoGPTQ / GPTQModel / transformers (quant_method "gptq"), for a
 * linear of `out` x `in` with `bits`-bit values and groups of `group_size` inputs:
 *
 *   qweight [in * bits / 32, out]           int32: packed down the input dim, per output column
 *   qzeros  [groups, ceil(out * bits / 32)] int32: packed along the output dim, per group
 *   scales  [groups, out]                   f16
 *   g_idx   [in]                            int32: the group of each input (needed for desc_act)
 *
 * Values are a little-endian bit stream: value i occupies bits i*bits.. of the words in
 * order, so 3-bit values may straddle two words. GPTQ v1 checkpoints store zero - 1
 * (checkpoint_format "gptq"); gptq_v2 stores the zero. Dequantized:
 *   w[n, k] = scales[g, n] * (q[k, n] - zero[g, n]),  g = g_idx[k]
 */
import { CheckpointError } from "../errors.js";
import type { GptqConfig } from "./hf-quant-config.js";
import type { LinearShape } from "./awq.js";
import type { QuantLinear } from "./quant-linear.js";
import { expectShape, groupCount, type QuantData, type QuantParts } from "./quant-parts.js";

/** The [out, in] of the linear, after checking every part's shape against it; `expected` comes from config.json when known. */
export function gptqShape(cfg: GptqConfig, parts: QuantParts, expected?: readonly number[]): LinearShape {
  const { qweight, qzeros, scales, gIdx } = parts;
  const [rows, cols] = expected ?? [qweight.shape[1] ?? 0, Math.floor(((qweight.shape[0] ?? 0) * 32) / cfg.bits)];
  if ((cols * cfg.bits) % 32 !== 0) {
    throw new CheckpointError(qweight.file, `${parts.prefix}: GPTQ packs ${cfg.bits}-bit values down the input dim in whole int32 words, but the linear has ${cols} inputs`);
  }
  if (cfg.descAct && !gIdx) {
    throw new CheckpointError(qweight.file, `${parts.prefix}.g_idx is missing: quantization_config has desc_act true, so the input groups are only known from g_idx`);
  }
  const G = groupCount(cols, cfg.groupSize);
  const layout = `GPTQ ${cfg.bits}-bit, group_size ${cfg.groupSize ?? -1}, a [${rows}, ${cols}] linear: qweight [in*bits/32, out], qzeros [groups, ceil(out*bits/32)], scales [groups, out], g_idx [in]`;
  expectShape(qweight, [(cols * cfg.bits) / 32, rows], layout);
  expectShape(qzeros, [G, Math.ceil((rows * cfg.bits) / 32)], layout);
  expectShape(scales, [G, rows], layout);
  if (gIdx) expectShape(gIdx, [cols], layout);
  return { rows, cols };
}

/** Value i of the bit stream words[at], words[at + stride], ... */
function streamValue(words: Int32Array, at: number, stride: number, i: number, bits: number): number {
  const p = i * bits;
  const w = p >>> 5;
  const s = p & 31;
  let v = words[at + w * stride] >>> s;
  if (s + bits > 32) v |= words[at + (w + 1) * stride] << (32 - s);
  return v & ((1 << bits) - 1);
}

export function unpackGptq(cfg: GptqConfig, parts: QuantParts, { rows, cols }: LinearShape, data: QuantData, scaleDType: "f16" | "f32"): QuantLinear {
  const { bits } = cfg;
  const G = groupCount(cols, cfg.groupSize);
  const q = new Uint8Array(rows * cols); // [out, in]
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) q[n * cols + k] = streamValue(data.qweight, n, rows, k, bits); // column n of qweight
  }
  const zc = Math.ceil((rows * bits) / 32);
  const zeros = new Uint16Array(G * rows); // [groups, out]
  for (let g = 0; g < G; g++) {
    for (let n = 0; n < rows; n++) zeros[g * rows + n] = streamValue(data.qzeros, g * zc, 1, n, bits) + cfg.zeroOffset;
  }
  const groupSize = cfg.groupSize ?? cols;
  const group = data.gIdx ? Int32Array.from(data.gIdx) : Int32Array.from({ length: cols }, (_, k) => Math.floor(k / groupSize));
  const bad = group.findIndex((g) => g < 0 || g >= G);
  if (bad >= 0) {
    throw new CheckpointError(parts.gIdx!.file, `tensor ${parts.gIdx!.name}[${bad}] = ${group[bad]} is not a group index in [0, ${G})`);
  }
  return { rows, cols, bits, groupSize, q, zeros, scales: data.scales, scaleDType, group };
}

/**
 * AutoAWQ's GEMM layout (quant_method "awq", version "gemm", 4-bit, zero points), for a
 * linear of `out` x `in` with groups of `group_size` input columns:
 *
 *   qweight [in, out / 8]       int32: 8 output columns of one input row per word
 *   qzeros  [groups, out / 8]   int32: packed the same way
 *   scales  [groups, out]       f16
 *
 * Inside a word the 4-bit values are interleaved: bits 4i..4i+3 hold output column
 * 8j + ORDER[i]. Dequantized: w[n, k] = scales[g, n] * (q[k, n] - zeros[g, n]), g = k / group_size.
 */
import { CheckpointError } from "../errors.js";
import type { AwqConfig } from "./hf-quant-config.js";
import type { QuantLinear } from "./quant-linear.js";
import { expectShape, groupCount, type QuantData, type QuantParts } from "./quant-parts.js";

const PACK = 8; // int4 values per int32
const ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; // nibble i of word j holds output column 8j + ORDER[i]

export interface LinearShape {
  rows: number;
  cols: number;
}

/** The [out, in] of the linear, after checking every part's shape against it; `expected` comes from config.json when known. */
export function awqShape(cfg: AwqConfig, parts: QuantParts, expected?: readonly number[]): LinearShape {
  const qw = parts.qweight;
  const [rows, cols] = expected ?? [(qw.shape[1] ?? 0) * PACK, qw.shape[0] ?? 0];
  if (rows % PACK !== 0) {
    throw new CheckpointError(qw.file, `${parts.prefix}: AWQ packs ${PACK} output features per int32, but the linear has ${rows}`);
  }
  const G = groupCount(cols, cfg.groupSize);
  const layout = `AWQ GEMM 4-bit, group_size ${cfg.groupSize ?? -1}, a [${rows}, ${cols}] linear: qweight [in, out/8], qzeros [groups, out/8], scales [groups, out]`;
  expectShape(qw, [cols, rows / PACK], layout);
  expectShape(parts.qzeros, [G, rows / PACK], layout);
  expectShape(parts.scales, [G, rows], layout);
  return { rows, cols };
}

/** Words of an AWQ tensor [r, out / 8] -> values [r, out] in natural column order. */
function unpackRows(words: Int32Array, r: number, out: number, into: Uint8Array | Uint16Array): void {
  const wpr = out / PACK; // words per row
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < wpr; j++) {
      const w = words[i * wpr + j];
      for (let s = 0; s < PACK; s++) into[i * out + j * PACK + ORDER[s]] = (w >>> (4 * s)) & 0xf;
    }
  }
}

export function unpackAwq(cfg: AwqConfig, { rows, cols }: LinearShape, data: QuantData, scaleDType: "f16" | "f32"): QuantLinear {
  const G = groupCount(cols, cfg.groupSize);
  const byInput = new Uint8Array(cols * rows); // [in, out], as stored
  unpackRows(data.qweight, cols, rows, byInput);
  const q = new Uint8Array(rows * cols); // [out, in]
  for (let k = 0; k < cols; k++) for (let n = 0; n < rows; n++) q[n * cols + k] = byInput[k * rows + n];
  const zeros = new Uint16Array(G * rows); // [groups, out]
  unpackRows(data.qzeros, G, rows, zeros);
  const groupSize = cfg.groupSize ?? cols;
  const group = Int32Array.from({ length: cols }, (_, k) => Math.floor(k / groupSize));
  return { rows, cols, bits: 4, groupSize, q, zeros, scales: data.scales, scaleDType, group };
}

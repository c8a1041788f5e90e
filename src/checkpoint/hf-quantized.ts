/**
 * AWQ / GPTQ linears of a Hugging Face directory, shown to the rest of llmrt as the
 * usual `*.weight` tensors: `<prefix>.qweight`, `.qzeros`, `.scales` (+ `.g_idx`) become
 * one canonical `[out, in]` weight that reads as exact float32 and, where a packed
 * format holds the same values (AWQ; GPTQ 4/8-bit without reordered groups), also reads
 * packed for engine builds that keep weights packed.
 */
import { join } from "node:path";
import { CheckpointError } from "../errors.js";
import { awqShape, unpackAwq, type LinearShape } from "./awq.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors } from "./expected-tensors.js";
import { gptqShape, unpackGptq } from "./gptq.js";
import type { HfQuantConfig } from "./hf-quant-config.js";
import { hfToCanonical } from "./hf-names.js";
import type { LazyTensor } from "./lazy-checkpoint.js";
import { dequantizeLinear, toPackedMatrix, type QuantLinear } from "./quant-linear.js";
import { expectDTypes, type QuantData, type QuantPart, type QuantParts } from "./quant-parts.js";
import type { SafetensorsEntry, SafetensorsFile } from "./safetensors-file.js";

const QWEIGHT = ".qweight";

interface Located {
  shard: SafetensorsFile;
  entry: SafetensorsEntry;
}

/** Every tensor of the directory by HF name, from the shard the index assigns it to. */
function locate(shards: SafetensorsFile[], weightMap: Map<string, string> | null, dir: string): Map<string, Located> {
  const all = new Map<string, Located>();
  for (const shard of shards) {
    for (const entry of shard.entries.values()) {
      if (weightMap && join(dir, weightMap.get(entry.name) ?? "") !== shard.path) continue; // as the float reader does
      all.set(entry.name, { shard, entry });
    }
  }
  return all;
}

function int32(l: Located): Int32Array {
  const out = new Int32Array(l.entry.nbytes / 4);
  l.shard.file.readInto(l.entry.offset, new Uint8Array(out.buffer), `tensor ${l.entry.name}`);
  return out;
}

/**
 * Canonical name -> lazy tensor for each quantized linear llmrt uses; throws at open time
 * for packed tensors without a quantization_config, missing parts, and wrong dtypes or shapes.
 */
export function quantizedLinears(dir: string, quant: HfQuantConfig | null, config: ModelConfig,
  shards: SafetensorsFile[], weightMap: Map<string, string> | null): Map<string, LazyTensor> {
  const all = locate(shards, weightMap, dir);
  const out = new Map<string, LazyTensor>();
  const expected = expectedTensors(config);
  for (const [name, qweight] of all) {
    if (!name.endsWith(QWEIGHT)) continue;
    const prefix = name.slice(0, -QWEIGHT.length);
    if (!quant) {
      throw new CheckpointError(qweight.shard.path, `holds the packed tensor ${name}, but config.json has no quantization_config`,
        "download the model's config.json again (AWQ / GPTQ checkpoints describe their packing there)");
    }
    const canonical = hfToCanonical(`${prefix}.weight`);
    if (canonical === null) continue; // a module llmrt does not use
    const part = (suffix: string, required: boolean): QuantPart | undefined => {
      const l = all.get(prefix + suffix);
      if (!l) {
        if (!required) return undefined;
        throw new CheckpointError(qweight.shard.path, `${name} has no ${prefix}${suffix} beside it`,
          `${quant.method.toUpperCase()} linears store qweight, qzeros and scales; the checkpoint is incomplete, download it again`);
      }
      return { file: l.shard.path, name: l.entry.name, dtype: l.entry.dtype, shape: [...l.entry.shape] };
    };
    const parts: QuantParts = { prefix, qweight: part(QWEIGHT, true)!, qzeros: part(".qzeros", true)!, scales: part(".scales", true)!, gIdx: part(".g_idx", false) };
    expectDTypes(parts);
    const want = expected.get(canonical);
    const shape = quant.method === "awq" ? awqShape(quant, parts, want) : gptqShape(quant, parts, want);
    const load = () => unpack(quant, parts, shape, all);
    out.set(canonical, {
      info: { name: canonical, dtype: "f32", shape: [shape.rows, shape.cols] },
      read: () => dequantizeLinear(load()),
      packed: () => toPackedMatrix(load()),
    });
  }
  return out;
}

function unpack(quant: HfQuantConfig, parts: QuantParts, shape: LinearShape, all: Map<string, Located>): QuantLinear {
  const get = (p: QuantPart) => all.get(p.name)!;
  const scales = get(parts.scales);
  const data: QuantData = {
    qweight: int32(get(parts.qweight)),
    qzeros: int32(get(parts.qzeros)),
    scales: scales.shard.readF32(parts.scales.name),
    ...(parts.gIdx ? { gIdx: int32(get(parts.gIdx)) } : {}),
  };
  const scaleDType = parts.scales.dtype === "F16" ? "f16" : "f32"; // bf16 widens exactly to f32, not to f16
  return quant.method === "awq" ? unpackAwq(quant, shape, data, scaleDType) : unpackGptq(quant, parts, shape, data, scaleDType);
}

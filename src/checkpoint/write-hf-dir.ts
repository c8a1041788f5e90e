/**
 * Writes a Hugging Face model directory from a ModelConfig and canonical tensors:
 * config.json and model.safetensors (or shards + model.safetensors.index.json), with
 * q/k rows moved to HF's neox layout when the config's RoPE is interleaved.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ModelConfig } from "./config.js";
import { expectedTensors } from "./expected-tensors.js";
import { hfConfigJson } from "./hf-config.js";
import { canonicalToHf } from "./hf-names.js";
import { toRopeLayout } from "./rope-permute.js";
import { getTensor, hasTensor, type CanonicalTensors } from "./tensor-encode.js";
import { numel } from "./tensor-data.js";
import { writeSafetensors, type SafetensorsDType, type SafetensorsTensor } from "./write-safetensors.js";

export interface HfWriteOptions {
  /** Storage dtype of every tensor (default f32). */
  dtype?: SafetensorsDType;
  /** Split into model-0000i-of-0000n.safetensors shards of at most about this many bytes. */
  shardBytes?: number;
  /** Also write generation_config.json with these fields. */
  generationConfig?: Record<string, unknown>;
}

/** The tensors of `config`, in HF names and layout, read from `src` one at a time. */
function hfTensors(config: ModelConfig, src: CanonicalTensors, dtype: SafetensorsDType): SafetensorsTensor[] {
  const out: SafetensorsTensor[] = [];
  for (const [name, shape] of expectedTensors(config)) {
    if (!hasTensor(src, name)) throw new RangeError(`writeHfCheckpoint: tensor ${name} [${shape.join(", ")}] is missing`);
    const data = () => {
      const w = getTensor(src, name)!;
      if (w.length !== numel(shape)) {
        throw new RangeError(`writeHfCheckpoint: ${name} has ${w.length} values, config implies [${shape.join(", ")}]`);
      }
      return toRopeLayout(config, name, w, config.rope.style, "neox");
    };
    out.push({ name: canonicalToHf(name)!, dtype, shape, data });
  }
  return out;
}

export function writeHfCheckpoint(dir: string, config: ModelConfig, tensors: CanonicalTensors, opts: HfWriteOptions = {}): void {
  const dtype = opts.dtype ?? "f32";
  const json = { ...hfConfigJson(config), torch_dtype: { f32: "float32", f16: "float16", bf16: "bfloat16" }[dtype] };
  const all = hfTensors(config, tensors, dtype);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(json, null, 2) + "\n");
  if (opts.generationConfig) writeFileSync(join(dir, "generation_config.json"), JSON.stringify(opts.generationConfig, null, 2) + "\n");
  const meta = { format: "pt" };
  if (!opts.shardBytes) return writeSafetensors(join(dir, "model.safetensors"), all, meta);

  const shards: SafetensorsTensor[][] = [[]];
  let size = 0;
  const item = dtype === "f32" ? 4 : 2;
  for (const t of all) {
    const bytes = numel(t.shape) * item;
    if (size > 0 && size + bytes > opts.shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += bytes;
  }
  const pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  shards.forEach((group, i) => {
    const name = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    writeSafetensors(join(dir, name), group, meta);
    for (const t of group) weightMap[t.name] = name;
  });
  const totalSize = all.reduce((a, t) => a + numel(t.shape) * item, 0);
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + "\n");
}

/**
 * A Hugging Face model directory: config.json (+ generation_config.json) and weights in
 * model.safetensors, or sharded model-*.safetensors listed by model.safetensors.index.json.
 * AWQ / GPTQ linears (quantization_config) are read by hf-quantized.ts.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { CheckpointError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import { checkTensors } from "./expected-tensors.js";
import { parseHfConfig } from "./hf-config.js";
import { hfToCanonical } from "./hf-names.js";
import { hfQuantConfig } from "./hf-quant-config.js";
import { quantizedLinears } from "./hf-quantized.js";
import { LazyCheckpoint, type LazyTensor } from "./lazy-checkpoint.js";
import { OUTPUT, layerTensor } from "./names.js";
import { SafetensorsFile } from "./safetensors-file.js";
import type { Checkpoint, TokenizerSource } from "./types.js";

const INDEX = "model.safetensors.index.json";
const SINGLE = "model.safetensors";

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CheckpointError(file, `cannot read: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
    return v;
  } catch (e) {
    throw new CheckpointError(file, `is not valid JSON: ${(e as Error).message}`, "download the file again");
  }
}

/** Shard file names and, when sharded, which file each HF tensor name lives in. */
function shardsOf(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  if (existsSync(join(dir, INDEX))) {
    const idx = readJson(join(dir, INDEX));
    const wm = idx.weight_map;
    if (typeof wm !== "object" || wm === null) throw new CheckpointError(join(dir, INDEX), `has no "weight_map" object`);
    const weightMap = new Map(Object.entries(wm as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
    return { files: [...new Set(weightMap.values())], weightMap };
  }
  if (existsSync(join(dir, SINGLE))) return { files: [SINGLE], weightMap: null };
  const found = readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
  if (found.length === 0) {
    throw new CheckpointError(dir, `no ${SINGLE}, ${INDEX} or other *.safetensors file`,
      "download the model's safetensors weights (PyTorch .bin weights are not supported)");
  }
  return { files: found, weightMap: null };
}

export function openSafetensorsDir(dir: string): Checkpoint {
  const configFile = join(dir, "config.json");
  if (!existsSync(configFile)) {
    throw new CheckpointError(dir, "no config.json next to the safetensors weights", "download config.json from the model repository");
  }
  const genFile = join(dir, "generation_config.json");
  const gen = existsSync(genFile) ? readJson(genFile) : null;
  const raw = readJson(configFile);
  const config: ModelConfig = parseHfConfig(raw, configFile, gen, genFile);
  const quant = hfQuantConfig(raw, configFile, dir); // AWQ / GPTQ, or null

  const { files, weightMap } = shardsOf(dir);
  const shards: SafetensorsFile[] = [];
  const closeAll = () => shards.forEach((s) => s.close());
  try {
    const table = new Map<string, LazyTensor>();
    for (const f of files) {
      const shard = SafetensorsFile.open(join(dir, f));
      shards.push(shard);
      for (const e of shard.entries.values()) {
        const name = hfToCanonical(e.name);
        if (name === null || (weightMap && weightMap.get(e.name) !== f)) continue;
        if (table.has(name)) throw new CheckpointError(shard.path, `tensor ${e.name} appears in more than one shard`);
        const info = { name, dtype: shard.tensorDType(e), shape: [...e.shape] };
        const d = info.dtype;
        table.set(name, { info, read: () => shard.readF32(e.name, name), ...(d === "f16" || d === "bf16" ? { bits16: () => ({ dtype: d, bits: shard.readBits16(e.name, name) }) } : {}) });
      }
    }
    for (const [name, t] of quantizedLinears(dir, quant, config, shards, weightMap)) {
      if (table.has(name)) throw new CheckpointError(dir, `${t.info.name} is stored both as a float weight and as a quantized qweight`);
      table.set(name, t);
    }
    if (weightMap) {
      for (const [hf, f] of weightMap) {
        const name = hfToCanonical(hf);
        if (name !== null && !table.has(name)) {
          throw new CheckpointError(join(dir, f), `${INDEX} says it holds ${hf}, but it does not`, "re-download the shards");
        }
      }
    }
    reconcile(config, table);
    checkTensors(dir, config, (n) => table.get(n)?.info);
    const tokenizer: TokenizerSource = existsSync(join(dir, "tokenizer.json")) ? { kind: "hf", dir } : { kind: "none" };
    return new LazyCheckpoint("safetensors", dir, config, tokenizer, table, closeAll, quant?.method);
  } catch (e) {
    closeAll();
    throw e;
  }
}

/** Lets the tensors settle what configs leave implicit: a missing lm_head means tied, present biases mean bias. */
function reconcile(config: ModelConfig, table: Map<string, LazyTensor>): void {
  if (!table.has(OUTPUT)) config.tieWordEmbeddings = true;
  // Tied models read the head from the embedding, as transformers does even when lm_head is saved.
  if (config.tieWordEmbeddings) table.delete(OUTPUT);
  if (table.has(layerTensor(0, "attn_q.bias"))) config.attentionBias = true;
}

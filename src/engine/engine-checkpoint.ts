/**
 * An engine dir read as a Checkpoint: its stored config and its (fused, converted)
 * tensors by the names the optimized graph uses. Lets code that wants "a model's config
 * and tensors" take an engine dir too; reading widens to float32 (packed int8 / int4
 * weights are dequantized, so they show as f32).
 */
import type { Checkpoint, TensorInfo } from "../checkpoint/types.js";
import { EngineError } from "../errors.js";
import { readManifest, WeightsReader, type EngineManifest } from "./format.js";
import { isPackedDType } from "../quant/packed.js";
import { decodeEntry } from "./packed-weights.js";

export function engineAsCheckpoint(dir: string, manifest: EngineManifest = readManifest(dir)): Checkpoint {
  const entries = new Map(manifest.weights.tensors.map((e) => [e.name, e]));
  let reader: WeightsReader | null = null;
  const dtypeOf = (e: EngineManifest["weights"]["tensors"][number]) => (isPackedDType(e.dtype) ? "f32" : e.dtype);
  const entry = (name: string) => {
    const e = entries.get(name);
    if (!e) throw new EngineError(dir, `no tensor "${name}" in the engine`, "the engine stores fused tensors (e.g. blk.0.attn_qkv.weight); list them with llmrt inspect");
    return e;
  };
  return {
    format: manifest.source.format,
    path: dir,
    config: manifest.model,
    tokenizer: { kind: "none" },
    tensors: (): TensorInfo[] => manifest.weights.tensors.map((e) => ({ name: e.name, dtype: dtypeOf(e), shape: e.shape })),
    has: (name) => entries.has(name),
    info: (name) => {
      const e = entry(name);
      return { name, dtype: dtypeOf(e), shape: e.shape };
    },
    readF32(name) {
      const e = entry(name);
      reader ??= new WeightsReader(dir, manifest);
      return decodeEntry(reader.read(e, true), e, false) as Float32Array;
    },
    close() {
      reader?.close();
      reader = null;
    },
  };
}

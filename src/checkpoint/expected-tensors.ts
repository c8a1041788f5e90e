/**
 * The canonical tensors a ModelConfig implies, with their shapes. Readers check a
 * checkpoint against this at open time; writers use it to know what to write.
 */
import { CheckpointError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import { OUTPUT, OUTPUT_NORM, TOKEN_EMBD, layerTensor } from "./names.js";
import type { TensorInfo } from "./types.js";

/** Canonical name -> shape, in a stable order (embedding, layers, final norm, head). */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const m = new Map<string, number[]>();
  m.set(TOKEN_EMBD, [c.vocabSize, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const t = (n: Parameters<typeof layerTensor>[1], shape: number[]) => m.set(layerTensor(l, n), shape);
    t("attn_norm.weight", [H]);
    t("attn_q.weight", [q, H]);
    t("attn_k.weight", [kv, H]);
    t("attn_v.weight", [kv, H]);
    if (c.attentionBias) {
      t("attn_q.bias", [q]);
      t("attn_k.bias", [kv]);
      t("attn_v.bias", [kv]);
    }
    if (c.qkNorm) {
      t("attn_q_norm.weight", [c.headDim]);
      t("attn_k_norm.weight", [c.headDim]);
    }
    t("attn_output.weight", [H, q]);
    t("ffn_norm.weight", [H]);
    t("ffn_gate.weight", [c.intermediateSize, H]);
    t("ffn_up.weight", [c.intermediateSize, H]);
    t("ffn_down.weight", [H, c.intermediateSize]);
  }
  m.set(OUTPUT_NORM, [H]);
  if (!c.tieWordEmbeddings) m.set(OUTPUT, [c.vocabSize, H]);
  return m;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Throws a CheckpointError naming every missing tensor or wrong shape (the first few). */
export function checkTensors(file: string, c: ModelConfig, have: (name: string) => TensorInfo | undefined): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [name, shape] of expectedTensors(c)) {
    const t = have(name);
    if (!t) missing.push(name);
    else if (!sameShape(t.shape, shape)) wrong.push(`${name} is [${t.shape.join(", ")}], config implies [${shape.join(", ")}]`);
  }
  const list = (xs: string[]) => xs.slice(0, 5).join("; ") + (xs.length > 5 ? `; and ${xs.length - 5} more` : "");
  if (missing.length) {
    throw new CheckpointError(file, `missing ${missing.length} tensor(s) the config requires: ${list(missing)}`,
      "the weights do not match the config (wrong config.json, or an incomplete/sharded download)");
  }
  if (wrong.length) {
    throw new CheckpointError(file, `tensor shapes disagree with the config: ${list(wrong)}`,
      "the weights do not match the config (wrong config.json or a mislabelled file)");
  }
}

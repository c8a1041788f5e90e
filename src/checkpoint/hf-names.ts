/**
 * Hugging Face Llama-family tensor names <-> canonical (GGUF-style) names.
 * Names we do not map (e.g. rotary_emb.inv_freq in old checkpoints) are ignored.
 */
import { OUTPUT, OUTPUT_NORM, TOKEN_EMBD } from "./names.js";

const GLOBAL: Record<string, string> = {
  "model.embed_tokens.weight": TOKEN_EMBD,
  "model.norm.weight": OUTPUT_NORM,
  "lm_head.weight": OUTPUT,
};

const LAYER: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.q_proj.bias": "attn_q.bias",
  "self_attn.k_proj.bias": "attn_k.bias",
  "self_attn.v_proj.bias": "attn_v.bias",
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};

const LAYER_BACK = Object.fromEntries(Object.entries(LAYER).map(([hf, c]) => [c, hf]));
const GLOBAL_BACK = Object.fromEntries(Object.entries(GLOBAL).map(([hf, c]) => [c, hf]));

const HF_LAYER = /^model\.layers\.(\d+)\.(.+)$/;
const CANON_LAYER = /^blk\.(\d+)\.(.+)$/;

/** "model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight"; null when not a tensor we use. */
export function hfToCanonical(name: string): string | null {
  if (name in GLOBAL) return GLOBAL[name];
  const m = HF_LAYER.exec(name);
  if (!m || !(m[2] in LAYER)) return null;
  return `blk.${Number(m[1])}.${LAYER[m[2]]}`;
}

/** "blk.3.ffn_up.weight" -> "model.layers.3.mlp.up_proj.weight"; null for a name HF has no slot for. */
export function canonicalToHf(name: string): string | null {
  if (name in GLOBAL_BACK) return GLOBAL_BACK[name];
  const m = CANON_LAYER.exec(name);
  if (!m || !(m[2] in LAYER_BACK)) return null;
  return `model.layers.${m[1]}.${LAYER_BACK[m[2]]}`;
}

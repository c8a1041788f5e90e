/**
 * Canonical tensor names (GGUF's, which are short and format-neutral). Readers map
 * their own names onto these; everything above the checkpoint layer uses only these.
 * Linear weights are [out, in].
 */
export const TOKEN_EMBD = "token_embd.weight"; // [vocab, hidden]
export const OUTPUT_NORM = "output_norm.weight"; // [hidden]
export const OUTPUT = "output.weight"; // [vocab, hidden]; absent when tied to TOKEN_EMBD

export type LayerTensor =
  | "attn_norm.weight" // [hidden]
  | "attn_q.weight" // [heads*headDim, hidden]
  | "attn_k.weight" // [kvHeads*headDim, hidden]
  | "attn_v.weight" // [kvHeads*headDim, hidden]
  | "attn_q.bias" // [heads*headDim]
  | "attn_k.bias" // [kvHeads*headDim]
  | "attn_v.bias" // [kvHeads*headDim]
  | "attn_q_norm.weight" // [headDim]
  | "attn_k_norm.weight" // [headDim]
  | "attn_output.weight" // [hidden, heads*headDim]
  | "ffn_norm.weight" // [hidden]
  | "ffn_gate.weight" // [intermediate, hidden]
  | "ffn_up.weight" // [intermediate, hidden]
  | "ffn_down.weight"; // [hidden, intermediate]

export function layerTensor(layer: number, t: LayerTensor): string {
  return `blk.${layer}.${t}`;
}

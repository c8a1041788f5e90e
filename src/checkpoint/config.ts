/**
 * One normalized description of a Llama-family decoder, whatever file it came from.
 * Readers (safetensors, GGUF, llama2.c) fill it; models and engines read only this.
 */
export type Architecture = "llama" | "mistral" | "qwen2" | "qwen3";
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = ["llama", "mistral", "qwen2", "qwen3"];

export type RopeScaling =
  | { type: "none" }
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface RopeConfig {
  theta: number;
  /**
   * How dimensions are paired for rotation.
   * "interleaved": pairs (2i, 2i+1), as llama2.c and llama.cpp's LLAMA_ROPE_TYPE_NORM store Llama q/k.
   * "neox": pairs (i, i + d/2) ("rotate_half"), as Hugging Face stores Llama/Qwen q/k.
   */
  style: "interleaved" | "neox";
  /** Rotated dimensions per head (= headDim unless partial rotary). */
  dim: number;
  scaling: RopeScaling;
}

export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Longest context the model was trained for. */
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  /** Bias on the q, k and v projections (Qwen2). */
  attentionBias: boolean;
  /** RMSNorm over each q and k head before RoPE (Qwen3). */
  qkNorm: boolean;
  /** Each token attends to at most this many previous positions (itself included); null = full causal (Mistral). */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** Any of these ends generation. */
  eosTokenIds: number[];
}

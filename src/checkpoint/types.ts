import type { PackedMatrix } from "../quant/packed.js";
import type { ModelConfig } from "./config.js";

/** Storage types a checkpoint tensor may have. Quantized ones are block formats of GGML (q*_k: K-quants, ggml-kquants.ts). */
export type TensorDType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k" | "q5_k" | "q6_k";

export interface TensorInfo {
  /** Canonical name (see names.ts), e.g. "blk.0.attn_q.weight". */
  name: string;
  dtype: TensorDType;
  /** Row-major, outermost first: a linear weight is [out, in]. */
  shape: number[];
}

export type CheckpointFormat = "safetensors" | "gguf" | "llama2c" | "synthetic";

/** Where a checkpoint's tokenizer can be found, as the reader saw it. */
export type TokenizerSource =
  | { kind: "hf"; dir: string } // tokenizer.json (+ tokenizer_config.json) in this directory
  | { kind: "gguf"; file: string } // vocabulary embedded in a GGUF file
  | { kind: "llama2c"; file: string } // llama2.c tokenizer.bin
  | { kind: "none" };

/**
 * A checkpoint opened lazily: the header is parsed, tensor bytes are read one tensor
 * at a time on request (files are many GB; never read whole into memory).
 */
/** A 16-bit tensor as stored. */
export interface Bits16 {
  dtype: "bf16" | "f16";
  /** row-major */
  bits: Uint16Array;
}

export interface Checkpoint {
  readonly format: CheckpointFormat;
  /** The file or directory that was opened. */
  readonly path: string;
  readonly config: ModelConfig;
  readonly tokenizer: TokenizerSource;
  /** All tensors under canonical names. */
  tensors(): TensorInfo[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor converted to float32 (dequantized if needed), row-major. */
  readF32(name: string): Float32Array;
  /** The stored bytes of a GGML block-quantized tensor (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), for builders that keep them packed; undefined for other tensors. */
  readRaw?(name: string): Uint8Array | undefined;
  /**
   * A bf16 / fp16 tensor's stored values as they are (readF32 widens exactly these), for
   * builders that keep 16-bit weights in 16 bits; undefined for other tensors.
   */
  readBits16?(name: string): Bits16 | undefined;
  /** How a pre-quantized checkpoint's packed weights were made (its quantization_config), for logs; absent for others. */
  readonly quantMethod?: "awq" | "gptq";
  /** A pre-quantized weight (AWQ, GPTQ) in llmrt's packed format, when it maps exactly; undefined otherwise (read it with readF32). */
  readPacked?(name: string): PackedMatrix | undefined;
  /** Release file handles. */
  close(): void;
}

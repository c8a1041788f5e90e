/**
 * The model `llmrt bench` measures: a checkpoint path or Hub id, an in-memory synthetic
 * model, or (with --model-format) a synthetic model written to a cached file and then
 * opened exactly as a user's file is. For --target cpu the 4 GiB WebAssembly heap is
 * checked first, before anything big is generated, written or read.
 */
import { openModelSpec } from "../api/load-model.js";
import { kvBytesPerBlock } from "../api/kv-budget.js";
import type { KvDType } from "../backends/backend.js";
import { systemBlas } from "../backends/cpu/blas.js";
import { HEAP_LIMIT_BYTES, HeapLimitError } from "../backends/cpu/heap.js";
import type { ModelConfig } from "../checkpoint/config.js";
import { expectedTensors } from "../checkpoint/expected-tensors.js";
import type { Checkpoint, TensorDType } from "../checkpoint/types.js";
import type { EngineDType } from "../engine/options.js";
import { OptionError } from "../errors.js";
import { ggmlPackedDType } from "../quant/ggml.js";
import { FORMAT_DTYPES, syntheticModelFile, syntheticSpecConfig, type SyntheticFormat } from "../models/synthetic-files.js";
import { syntheticCheckpoint } from "../models/synthetic.js";

export interface BenchModelFlags {
  model: string;
  target: string;
  dtype: EngineDType;
  modelFormat?: SyntheticFormat;
  modelDtype?: TensorDType;
  kvDtype?: KvDType;
}

export interface BenchSizes {
  maxSeqs: number;
  maxSeqLen: number;
  blockSize: number;
}

/** The file dtype when --model-dtype is not given: the engine's --dtype where the format holds it, else f32. */
export function defaultModelDtype(format: SyntheticFormat, dtype: EngineDType): TensorDType {
  const want: TensorDType = dtype === "fp16" ? "f16" : dtype === "bf16" ? "bf16" : "f32";
  return FORMAT_DTYPES[format].includes(want) ? want : "f32";
}

/**
 * Least bytes the CPU backend's heap takes: packed weights (vectors f32; matrices in the
 * engine dtype, or 16 bits in an fp32 engine when the source is 16-bit, since the backend
 * keeps the narrowest exact type; GGUF Q8_0 / Q4_0 / K-quant matrices packed, at most 1.125
 * bytes a value) plus the KV cache. Activations come on top.
 */
export function cpuHeapBytes(config: ModelConfig, tensors: Iterable<{ shape: readonly number[]; dtype: TensorDType }>, o: BenchSizes & { dtype: EngineDType; kvDtype?: KvDType; blas?: boolean }): { weights: number; kv: number } {
  let weights = 0;
  let largestF32Matrix = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.shape.length >= 2 && ggmlPackedDType(t.dtype)) {
      // kept packed (cpu/packed.ts, kquant-layout.ts): at most int8 with an f32 scale per 32 values
      weights += Math.ceil(n * 1.125);
      continue;
    }
    const narrow = o.dtype !== "fp32" || t.dtype === "f16" || t.dtype === "bf16";
    // with a system BLAS, f32 matrices past the limit stay outside the heap (cpu/backend.ts), but
    // for an embedding table (at most the largest matrix) that other kernels read
    if (o.blas && t.shape.length >= 2 && !narrow) largestF32Matrix = Math.max(largestF32Matrix, n * 4);
    else weights += n * (t.shape.length < 2 || !narrow ? 4 : 2);
  }
  weights += largestF32Matrix;
  const kv = o.maxSeqs * Math.ceil(o.maxSeqLen / o.blockSize) * kvBytesPerBlock(config, o.blockSize, o.kvDtype);
  return { weights, kv };
}

function checkCpuHeap(config: ModelConfig, tensors: Iterable<{ shape: readonly number[]; dtype: TensorDType }>, o: BenchSizes & { dtype: EngineDType; kvDtype?: KvDType }): void {
  const { weights, kv } = cpuHeapBytes(config, tensors, { ...o, blas: systemBlas() !== undefined });
  if (weights + kv <= HEAP_LIMIT_BYTES) return;
  const hint = o.dtype === "fp32"
    ? "store weights in 16 bits (--dtype bf16 or fp16; it halves the matrices), install OpenBLAS (f32 matrices then stay outside WebAssembly's memory), or pick a smaller shape"
    : "the weights do not fit even in 16 bits; pick a quantized file (--model-dtype q8_0, q4_0 or a K-quant: kept packed), a smaller shape, fewer --concurrency / shorter lengths, or --kv-dtype int8";
  throw new HeapLimitError(weights + kv, `weights (${weights} bytes, --dtype ${o.dtype}) and the KV cache (${kv} bytes, ${o.kvDtype ?? "f32"})`, hint);
}

/** Opens the model to bench; `file` is the synthetic file's path when one was written or reused, `writeS` the seconds writing it took. */
export async function openBenchCheckpoint(f: BenchModelFlags, sizes: BenchSizes): Promise<{ ckpt: Checkpoint; file?: string; writeS?: number }> {
  const heap = { ...sizes, dtype: f.dtype, kvDtype: f.kvDtype };
  const config = syntheticSpecConfig(f.model);
  if (!config) {
    if (f.modelFormat || f.modelDtype) throw new OptionError(f.modelFormat ? "--model-format" : "--model-dtype", `applies to synthetic:... models only, not ${f.model}`, "drop the option: a checkpoint is benchmarked in its own format");
    const ckpt = (await openModelSpec(f.model)).checkpoint;
    if (f.target === "cpu") checkCpuHeap(ckpt.config, ckpt.tensors(), heap);
    return { ckpt };
  }
  if (!f.modelFormat && f.modelDtype) throw new OptionError("--model-dtype", "needs --model-format (in-memory synthetic weights are f32)", "add --model-format gguf, safetensors or llama2c");
  const fileDtype = f.modelFormat ? (f.modelDtype ?? defaultModelDtype(f.modelFormat, f.dtype)) : "f32";
  if (f.target === "cpu") checkCpuHeap(config, [...expectedTensors(config).values()].map((shape) => ({ shape, dtype: fileDtype })), heap);
  if (!f.modelFormat) return { ckpt: syntheticCheckpoint(config, 0) };
  const t0 = performance.now();
  const file = syntheticModelFile(config, f.modelFormat, fileDtype);
  const writeS = (performance.now() - t0) / 1000;
  process.stderr.write(`synthetic model ${file.written ? `written to ${file.path} in ${writeS.toFixed(1)} s` : `reused from ${file.path}`}\n`);
  return { ckpt: (await openModelSpec(file.path)).checkpoint, file: file.path, writeS };
}

/**
 * A GGUF model file as a Checkpoint. GGUF names are already the canonical names; shapes
 * are stored innermost-first (ne[]) and reversed here to row-major [out, in].
 */
import { CheckpointError, UnsupportedModelError } from "../errors.js";
import { checkTensors, expectedTensors } from "./expected-tensors.js";
import { ModelFile } from "./file-io.js";
import { ROPE_FREQS, ggufArchitecture, ggufConfig } from "./gguf-config.js";
import { readGgufHeader, type GgufTensorInfo } from "./gguf-file.js";
import { LazyCheckpoint, type LazyTensor } from "./lazy-checkpoint.js";
import { readTensorBits16, readTensorF32, readTensorRaw } from "./tensor-data.js";
import type { Checkpoint, TensorInfo, TokenizerSource } from "./types.js";

export { readGgufMetadata } from "./gguf-file.js";
export { GgufArray, GgufMetadata, type GgufValue, type GgufValueType } from "./gguf-metadata.js";

const READABLE = "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K";

export function openGguf(path: string): Checkpoint {
  const file = new ModelFile(path);
  try {
    const header = readGgufHeader(file);
    const meta = header.metadata;
    if (header.tensors.length === 0) {
      throw new CheckpointError(path, "is a vocab-only GGUF (0 tensors): it holds a tokenizer but no weights",
        "use readGgufMetadata() for its vocabulary, or open the full model GGUF");
    }
    const splits = meta.number("split.count");
    if (splits !== undefined && splits > 1) {
      throw new UnsupportedModelError(`${path}: is part ${(meta.number("split.no") ?? 0) + 1} of a ${splits}-file split GGUF`,
        "merge the parts first: llama-gguf-split --merge first-part.gguf merged.gguf");
    }
    ggufArchitecture(meta); // unsupported architectures fail before any tensor is read
    const byName = new Map<string, GgufTensorInfo>(header.tensors.map((t) => [t.name, t]));
    const table = new Map<string, LazyTensor>();
    const unreadable = new Map<string, string>();
    for (const t of header.tensors) {
      if (!t.dtype) {
        unreadable.set(t.name, t.typeName);
        continue;
      }
      const loc = { file, offset: t.offset, dtype: t.dtype, shape: [...t.dims].reverse(), name: t.name };
      const info: TensorInfo = { name: t.name, dtype: t.dtype, shape: loc.shape };
      const quantized = t.dtype !== "f32" && t.dtype !== "f16" && t.dtype !== "bf16"; // GGML blocks: kept packed where a builder wants them
      const half = t.dtype === "f16" || t.dtype === "bf16" ? { dtype: t.dtype, loc: { ...loc, dtype: t.dtype } } : null;
      table.set(t.name, { info, read: () => readTensorF32(loc), ...(quantized ? { raw: () => readTensorRaw(loc) } : {}), ...(half ? { bits16: () => ({ dtype: half.dtype, bits: readTensorBits16(half.loc) }) } : {}) });
    }
    const view = {
      info: (n: string) => table.get(n)?.info ?? (byName.has(n) ? unreadableInfo(byName.get(n)!) : undefined),
      readF32: (n: string) => readOrExplain(path, table, unreadable, n),
    };
    const config = ggufConfig(meta, view);
    table.delete(ROPE_FREQS); // folded into config.rope.scaling
    checkTensors(path, config, view.info);
    for (const name of expectedTensors(config).keys()) {
      if (unreadable.has(name)) readOrExplain(path, table, unreadable, name); // throws, naming the type
    }
    const tokenizer: TokenizerSource = meta.has("tokenizer.ggml.tokens") ? { kind: "gguf", file: path } : { kind: "none" };
    return new LazyCheckpoint("gguf", path, config, tokenizer, table, () => file.close());
  } catch (e) {
    file.close();
    throw e;
  }
}

/** Shape-only info for a tensor whose type we cannot decode, so shape checks still run. */
function unreadableInfo(t: GgufTensorInfo): TensorInfo {
  return { name: t.name, dtype: "f32", shape: [...t.dims].reverse() };
}

function readOrExplain(path: string, table: Map<string, LazyTensor>, unreadable: Map<string, string>, name: string): Float32Array {
  const t = table.get(name);
  if (t) return t.read();
  const type = unreadable.get(name);
  if (type) {
    throw new UnsupportedModelError(
      `${path}: tensor ${name} is ${type}; llmrt reads ${READABLE} GGUF tensors`,
      "pick the model's Q4_K_M, Q8_0 or F16 file, or requantize: llama-quantize --allow-requantize in.gguf out.gguf Q4_K_M",
    );
  }
  throw new CheckpointError(path, `no tensor named ${name}`);
}

/**
 * The engine directory: engine.json (format version, target, model config, build options,
 * the optimized graph, the memory plan, the build report, and each tensor's dtype, shape,
 * offset, length and checksum) + weights.bin (tensors at 64-byte aligned offsets, in the
 * target's layout) + tokenizer files. Any change to this layout bumps ENGINE_FORMAT_VERSION.
 *
 * A sharded engine (llmrt build --tp N --pp M) is version SHARDED_ENGINE_FORMAT_VERSION:
 * one weights.rank<R>.bin per rank, and a `parallel` section with each rank's graph,
 * memory plan, report and tensors; the top-level graph, memoryPlan, report and weights
 * are rank 0's. An llmrt that reads only version 1 refuses it instead of misreading it.
 *
 * An engine holding packed (quantized) weights (llmrt build --quant, or a GGUF's Q8_0 /
 * Q4_0 / Q4_K / Q5_K / Q6_K tensors) is version PACKED_ENGINE_FORMAT_VERSION: tensors of
 * dtype int8 / int4 carry their `quant` layout (src/quant/packed.ts); q4_k / q5_k / q6_k
 * hold GGUF's super-blocks as they are, row after row, with the fixed layout
 * KQUANT_LAYOUT; w8a8 (llmrt build --quant w8a8, SmoothQuant) is stored as per-channel int8
 * but names a matmul that quantizes its input per token too (an llmrt that does not know
 * the dtype refuses the tensor); every other tensor is as in version 1.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ModelConfig } from "../checkpoint/config.js";
import type { CheckpointFormat, TensorDType } from "../checkpoint/types.js";
import { EngineError } from "../errors.js";
import type { Graph, Op, TensorDecl } from "../graph/ir.js";
import type { MemoryPlan } from "../graph/passes/plan-memory.js";
import type { PackedDType, PackedLayout } from "../quant/packed.js";
import { crc32Hex } from "./checksum.js";
import type { BuildOptions } from "./options.js";
import type { BuildReport } from "./report.js";

export const ENGINE_FORMAT = "llmrt-engine";
export const ENGINE_FORMAT_VERSION = 1;
/** Engines with a `parallel` section (one weights file per rank). */
export const SHARDED_ENGINE_FORMAT_VERSION = 2;
/** Engines with int8 / int4 packed weights. */
export const PACKED_ENGINE_FORMAT_VERSION = 3;
export const ENGINE_FILE = "engine.json";
export const WEIGHTS_FILE = "weights.bin";
export const WEIGHT_ALIGNMENT = 64;

/** Storage of an engine tensor: a checkpoint dtype, or a packed weight-only format. */
export type EngineTensorDType = TensorDType | PackedDType;

export interface TensorEntry {
  name: string;
  dtype: EngineTensorDType;
  /** Packed dtypes only: groups, zero points, scale storage. */
  quant?: PackedLayout;
  shape: number[];
  /** Byte offset in weights.bin (a multiple of WEIGHT_ALIGNMENT). */
  offset: number;
  /** Bytes. */
  length: number;
  /** CRC-32 of the bytes, 8 hex digits. */
  checksum: string;
}

/** How to get the tokenizer back from the engine dir. */
export interface EngineTokenizer {
  kind: "hf" | "llama2c" | "gguf" | "ascii" | "none";
  /** Files copied into the engine dir. */
  files: string[];
}

export interface SerializedGraph {
  tensors: [string, TensorDecl][];
  ops: Op[];
  outputs: string[];
}

export interface WeightsSection {
  file: string;
  bytes: number;
  alignment: number;
  tensors: TensorEntry[];
}

/** One rank of a sharded engine: rank = stage * tp + tpRank. */
export interface RankManifest {
  rank: number;
  stage: number;
  tpRank: number;
  /** Model layers [first, end) this rank's stage holds (its graph keeps the model's layer numbers). */
  layers: [number, number];
  /** KV heads this rank caches per layer. */
  kvHeads: number;
  graph: SerializedGraph;
  memoryPlan: MemoryPlan;
  report: BuildReport;
  weights: WeightsSection;
}

export interface ParallelManifest {
  tp: number;
  pp: number;
  ranks: RankManifest[];
}

export interface EngineManifest {
  format: typeof ENGINE_FORMAT;
  version: number;
  target: string;
  layout: string;
  builtAt: string;
  source: { format: CheckpointFormat; path: string; randomWeights: boolean };
  model: ModelConfig;
  build: BuildOptions;
  graph: SerializedGraph;
  memoryPlan: MemoryPlan;
  report: BuildReport;
  tokenizer: EngineTokenizer;
  weights: WeightsSection;
  /** Sharded engines only (version 2). */
  parallel?: ParallelManifest;
}

/** The graph as JSON: weights lose their recipes (weights.bin holds their values). */
export function serializeGraph(g: Graph): SerializedGraph {
  const tensors = [...g.tensors].map(([name, d]): [string, TensorDecl] => [name, d.kind === "weight" ? { kind: "weight", shape: d.shape } : d]);
  return { tensors, ops: g.ops, outputs: g.outputs };
}

export function deserializeGraph(s: SerializedGraph): Graph {
  return { tensors: new Map(s.tensors), ops: s.ops, outputs: s.outputs };
}

const rebuildHint = (m: Partial<EngineManifest> | undefined) =>
  `rebuild it: llmrt build --model ${m?.source?.path ?? "<checkpoint>"} -o <dir>`;

/** Reads and checks engine.json: right format and version, or a typed error saying what to rebuild. */
export function readManifest(dir: string): EngineManifest {
  const file = join(dir, ENGINE_FILE);
  if (!existsSync(file)) throw new EngineError(dir, `no ${ENGINE_FILE}: not an llmrt engine directory`, "build one with: llmrt build --model <checkpoint> -o <dir>");
  let m: Partial<EngineManifest>;
  try {
    m = JSON.parse(readFileSync(file, "utf8")) as Partial<EngineManifest>;
  } catch (e) {
    throw new EngineError(file, `unreadable: ${(e as Error).message}`, rebuildHint(undefined));
  }
  if (m.format !== ENGINE_FORMAT) throw new EngineError(file, `format is ${JSON.stringify(m.format)}, not "${ENGINE_FORMAT}"`, rebuildHint(m));
  if (m.version !== ENGINE_FORMAT_VERSION && m.version !== SHARDED_ENGINE_FORMAT_VERSION && m.version !== PACKED_ENGINE_FORMAT_VERSION) {
    throw new EngineError(file, `engine format version ${m.version}; this llmrt reads version ${ENGINE_FORMAT_VERSION} (and ${SHARDED_ENGINE_FORMAT_VERSION} for sharded, ${PACKED_ENGINE_FORMAT_VERSION} for quantized engines)`, rebuildHint(m));
  }
  if ((m.version === SHARDED_ENGINE_FORMAT_VERSION) !== (m.parallel !== undefined)) {
    throw new EngineError(file, `version ${m.version} ${m.parallel ? "has" : "lacks"} a "parallel" section`, rebuildHint(m));
  }
  for (const k of ["target", "model", "build", "graph", "memoryPlan", "weights", "tokenizer"] as const) {
    if (m[k] === undefined) throw new EngineError(file, `field "${k}" is missing`, rebuildHint(m));
  }
  return m as EngineManifest;
}

export function writeManifest(dir: string, m: EngineManifest): void {
  writeFileSync(join(dir, ENGINE_FILE), JSON.stringify(m, null, 1) + "\n");
}

/** Appends tensors to weights.bin at aligned offsets, recording their entries. */
export class WeightsWriter {
  private readonly fd: number;
  private at = 0;
  readonly entries: TensorEntry[] = [];

  constructor(readonly path: string) {
    this.fd = openSync(path, "w");
  }

  /** `bytes`: the tensor's stored bytes, or their parts in order (a packed tensor's q, scales, zeros: not copied into one buffer first). */
  add(name: string, dtype: EngineTensorDType, shape: number[], bytes: Uint8Array | readonly Uint8Array[], quant?: PackedLayout): TensorEntry {
    const parts = bytes instanceof Uint8Array ? [bytes] : bytes;
    const length = parts.reduce((n, p) => n + p.length, 0);
    const pad = (WEIGHT_ALIGNMENT - (this.at % WEIGHT_ALIGNMENT)) % WEIGHT_ALIGNMENT;
    if (pad) writeSync(this.fd, new Uint8Array(pad));
    const entry: TensorEntry = { name, dtype, ...(quant ? { quant } : {}), shape, offset: this.at + pad, length, checksum: crc32Hex(parts) };
    for (const p of parts) writeSync(this.fd, p);
    this.at = entry.offset + length;
    this.entries.push(entry);
    return entry;
  }

  close(): number {
    closeSync(this.fd);
    return this.at;
  }
}

/** Reads tensors of weights.bin by range, checking the file size and each checksum. */
export class WeightsReader {
  private readonly fd: number;
  readonly size: number;

  constructor(
    readonly dir: string,
    private readonly m: EngineManifest,
  ) {
    const path = join(dir, m.weights.file);
    if (!existsSync(path)) throw new EngineError(dir, `${m.weights.file} is missing`, rebuildHint(m));
    this.fd = openSync(path, "r");
    this.size = fstatSync(this.fd).size;
    if (this.size !== m.weights.bytes) {
      closeSync(this.fd);
      const what = this.size < m.weights.bytes ? "truncated" : "longer than recorded";
      throw new EngineError(join(dir, m.weights.file), `${what}: ${this.size} bytes, engine.json says ${m.weights.bytes}`, rebuildHint(m));
    }
  }

  read(e: TensorEntry, verify: boolean): Uint8Array {
    const buf = new Uint8Array(e.length + 4); // room to realign to 4 bytes: Float32Array views need it
    const bytes = buf.subarray(0, e.length);
    const got = readSync(this.fd, bytes, 0, e.length, e.offset);
    const where = join(this.dir, this.m.weights.file);
    if (got !== e.length) throw new EngineError(where, `tensor ${e.name}: read ${got} of ${e.length} bytes at ${e.offset}`, rebuildHint(this.m));
    if (verify && crc32Hex(bytes) !== e.checksum) {
      throw new EngineError(where, `tensor ${e.name} (bytes ${e.offset}..${e.offset + e.length}) fails its checksum: the file was altered or damaged`, rebuildHint(this.m));
    }
    return bytes;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Turns a --model spec into an engine dir to load, and its tokenizer:
 *   an engine dir (holding engine.json)          used as is;
 *   "synthetic:NAME" (random weights, in memory), a local checkpoint path, or a Hub id:
 *     built once into the engine cache (see engine/cache.ts) and reused.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ModelConfig } from "../checkpoint/config.js";
import { openCheckpoint } from "../checkpoint/open.js";
import { resolveModel } from "../checkpoint/resolve.js";
import type { Checkpoint } from "../checkpoint/types.js";
import type { BuildProgress } from "../engine/build.js";
import { buildProgressBar } from "../engine/build-progress.js";
import { ensureCachedEngine } from "../engine/cache.js";
import { engineAsCheckpoint } from "../engine/engine-checkpoint.js";
import { ENGINE_FILE, readManifest } from "../engine/format.js";
import type { BuildOptions, BuildRequest } from "../engine/options.js";
import { buildLogLine } from "../engine/report.js";
import { loadEngineTokenizer } from "../engine/tokenizer-files.js";
import { OptionError } from "../errors.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../models/synthetic.js";
import { AsciiTokenizer } from "../tokenizer/ascii.js";
import { loadTokenizer } from "../tokenizer/load.js";
import type { Tokenizer } from "../tokenizer/types.js";

export const DEFAULT_MODEL = "synthetic:tiny";

export interface LoadedModel {
  /** The opened checkpoint (close it when done); for an engine dir, the engine read as one. */
  checkpoint: Checkpoint;
  config: ModelConfig;
  /** The engine to load: the dir given, or the cached build of the checkpoint. */
  engineDir: string;
  /** What that engine was built for. */
  engineBuild: BuildOptions;
  tokenizer: Tokenizer;
  /** True for built-in random-weight models: their output is noise, and says so. */
  randomWeights: boolean;
  /** True when this call built the engine. */
  built: boolean;
}

export interface LoadModelOptions {
  /** A tokenizer.json, llama2.c tokenizer file or GGUF to use instead of the model's own. */
  tokenizer?: string;
  /** Download progress for Hub models. */
  onProgress?: (p: { file: string; downloaded: number; total: number }) => void;
  /** Build options for a checkpoint (an engine dir is used as built). */
  build?: BuildRequest;
  /** Where built engines are cached (default $LLMRT_CACHE, else ~/.cache/llmrt/engines). */
  engineCache?: string;
  /** Weight bytes written while building. Default: a progress bar on stderr when onProgress is set (a command line), else none. */
  onBuildProgress?: (p: BuildProgress) => void;
  /** The build log line ("fused 5 QKV, ...; arena 1.1 MB (naive 11 MB)") after a build. Default: stderr when onProgress is set. */
  onBuildLog?: (line: string) => void;
}

/** A local directory holding engine.json. */
export function isEngineDir(spec: string): boolean {
  return existsSync(spec) && statSync(spec).isDirectory() && existsSync(join(spec, ENGINE_FILE));
}

const pow2AtLeast = (n: number) => 2 ** Math.ceil(Math.log2(n));

/**
 * Capacities of cached builds, rounded up (to powers of two, at least the runtime's
 * defaults) so that runs asking for slightly different limits share one engine. Every
 * row may want logits (prompt logprobs).
 */
export function cacheBuildOptions(o: BuildRequest = {}): BuildRequest {
  const maxBatchTokens = pow2AtLeast(Math.max(512, o.maxBatchTokens ?? 0));
  return { ...o, maxSeqs: pow2AtLeast(Math.max(16, o.maxSeqs ?? 0)), maxBatchTokens, maxLogitRows: Math.max(maxBatchTokens, o.maxLogitRows ?? 0) };
}

/** Opens a checkpoint spec: synthetic:NAME, a local path, or a Hub id. */
export async function openModelSpec(spec: string, opts: Pick<LoadModelOptions, "onProgress"> = {}): Promise<{ checkpoint: Checkpoint; randomWeights: boolean }> {
  if (spec.startsWith("synthetic:")) {
    const name = spec.slice("synthetic:".length);
    const preset = SYNTHETIC_PRESETS[name];
    if (!preset) {
      throw new OptionError("--model", `unknown synthetic model "${name}"`, `choose one of: ${Object.keys(SYNTHETIC_PRESETS).map((n) => "synthetic:" + n).join(", ")}`);
    }
    return { checkpoint: syntheticCheckpoint(syntheticConfig(preset), 0), randomWeights: true };
  }
  const path = await resolveModel(spec, { onProgress: opts.onProgress });
  return { checkpoint: openCheckpoint(path), randomWeights: false };
}

export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  if (isEngineDir(spec)) {
    const manifest = readManifest(spec);
    const tokenizer = opts.tokenizer ? await loadTokenizer(opts.tokenizer) : await loadEngineTokenizer(spec, manifest.tokenizer);
    const checkpoint = engineAsCheckpoint(spec, manifest);
    return { checkpoint, config: manifest.model, engineDir: spec, engineBuild: manifest.build, tokenizer, randomWeights: manifest.source.randomWeights, built: false };
  }
  const { checkpoint, randomWeights } = await openModelSpec(spec, opts);
  try {
    const tokenizer = opts.tokenizer
      ? await loadTokenizer(opts.tokenizer)
      : randomWeights ? new AsciiTokenizer() : await loadTokenizer(checkpoint.tokenizer);
    const cli = opts.onProgress !== undefined; // a command line: show the build as it shows downloads
    const bar = !opts.onBuildProgress && cli ? buildProgressBar(`building the engine for ${spec} (cached for next time)`) : undefined;
    const onBuildLog = opts.onBuildLog ?? (cli ? (line: string) => console.error(`llmrt: ${line}`) : undefined);
    let cached;
    try {
      cached = ensureCachedEngine(checkpoint, cacheBuildOptions(opts.build), { onProgress: opts.onBuildProgress ?? bar }, opts.engineCache);
    } finally {
      bar?.stop();
    }
    if (cached.built) onBuildLog?.(`built ${cached.dir}: ${buildLogLine(cached.manifest.report)}`);
    return { checkpoint, config: checkpoint.config, engineDir: cached.dir, engineBuild: cached.manifest.build, tokenizer, randomWeights, built: cached.built };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

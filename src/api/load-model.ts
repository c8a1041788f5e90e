/**
 * Turns a --model spec into an opened checkpoint and its tokenizer:
 * "synthetic:NAME" (random weights, made in memory), a local path, or a Hub id.
 */
import { openCheckpoint } from "../checkpoint/open.js";
import { resolveModel } from "../checkpoint/resolve.js";
import type { Checkpoint } from "../checkpoint/types.js";
import { OptionError } from "../errors.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../models/synthetic.js";
import { AsciiTokenizer } from "../tokenizer/ascii.js";
import { loadTokenizer } from "../tokenizer/load.js";
import type { Tokenizer } from "../tokenizer/types.js";

export const DEFAULT_MODEL = "synthetic:tiny";

export interface LoadedModel {
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
  /** True for built-in random-weight models: their output is noise, and says so. */
  randomWeights: boolean;
}

export interface LoadModelOptions {
  /** A tokenizer.json, llama2.c tokenizer file or GGUF to use instead of the model's own. */
  tokenizer?: string;
  /** Download progress for Hub models. */
  onProgress?: (p: { file: string; downloaded: number; total: number }) => void;
}

export async function loadModel(spec: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  if (spec.startsWith("synthetic:")) {
    const name = spec.slice("synthetic:".length);
    const preset = SYNTHETIC_PRESETS[name];
    if (!preset) {
      throw new OptionError("--model", `unknown synthetic model "${name}"`, `choose one of: ${Object.keys(SYNTHETIC_PRESETS).map((n) => "synthetic:" + n).join(", ")}`);
    }
    const checkpoint = syntheticCheckpoint(syntheticConfig(preset), 0);
    const tokenizer = opts.tokenizer ? await loadTokenizer(opts.tokenizer) : new AsciiTokenizer();
    return { checkpoint, tokenizer, randomWeights: true };
  }
  const path = await resolveModel(spec, { onProgress: opts.onProgress });
  const checkpoint = openCheckpoint(path);
  try {
    const tokenizer = await loadTokenizer(opts.tokenizer ?? checkpoint.tokenizer);
    return { checkpoint, tokenizer, randomWeights: false };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}

/** A model spec (checkpoint, engine dir, Hub id) as an Engine and tokenizer for evaluation. */
import { loadModel, type LoadModelOptions } from "../api/load-model.js";
import { Engine } from "../engine/engine.js";
import { OptionError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";

export interface EvalModel {
  engine: Engine;
  tokenizer: Tokenizer;
  close(): void;
}

/** Loads `spec` for windows of `ctx` tokens (one sequence, every row's logits). */
export async function openEvalModel(spec: string, ctx: number, opts: LoadModelOptions = {}): Promise<EvalModel> {
  const m = await loadModel(spec, { ...opts, build: { maxBatchTokens: ctx, maxLogitRows: ctx, ...opts.build } });
  try {
    const rows = m.engineBuild.maxLogitRows;
    if (rows < ctx || m.engineBuild.maxBatchTokens < ctx) {
      throw new OptionError("--ctx", `${spec} was built for ${Math.min(rows, m.engineBuild.maxBatchTokens)} logit rows per step, fewer than --ctx ${ctx}`, `pass --ctx ${Math.min(rows, m.engineBuild.maxBatchTokens)}, or rebuild with --max-batch-tokens ${ctx} --max-logit-rows ${ctx}`);
    }
    const engine = Engine.load(m.engineDir, { maxSeqs: 1, maxSeqLen: Math.min(ctx, m.engineBuild.maxSeqLen) });
    return { engine, tokenizer: m.tokenizer, close: () => m.checkpoint.close() };
  } catch (e) {
    m.checkpoint.close();
    throw e;
  }
}

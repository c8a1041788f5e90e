/**
 * llmrt eval: accuracy of a model over a text. `ppl` prints perplexity (sliding
 * windows, progress bar); `compare` prints top-1 agreement and mean KL divergence of
 * the next-token distributions of two models (e.g. fp32 against int4-wo).
 */
import { readFileSync } from "node:fs";
import { SingleBar, Presets } from "cli-progress";
import type { Command } from "commander";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { compareModels, perplexity } from "../eval/metrics.js";
import { openEvalModel } from "../eval/open.js";
import { intOption } from "./options.js";

interface EvalFlags {
  model: string;
  against?: string;
  text: string;
  ctx: number;
  stride?: number;
  maxTokens?: number;
}

function progressBar(label: string): { update: (done: number, total: number) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} windows`, stream: process.stderr }, Presets.shades_classic);
  let started = false;
  return {
    update: (done, total) => {
      if (!started) (bar.start(total, 0), (started = true));
      bar.setTotal(total);
      bar.update(done);
    },
    stop: () => started && bar.stop(),
  };
}

async function readTokens(spec: string, f: EvalFlags): Promise<{ tokens: number[]; model: Awaited<ReturnType<typeof openEvalModel>> }> {
  const model = await openEvalModel(spec, f.ctx, { onProgress: cliProgressReporter() });
  const all = model.tokenizer.encode(readFileSync(f.text, "utf8"), { addBos: true });
  return { tokens: f.maxTokens ? all.slice(0, f.maxTokens) : all, model };
}

function common(c: Command): Command {
  return c
    .requiredOption("--model <spec>", "checkpoint, engine dir, Hugging Face id or synthetic:NAME")
    .requiredOption("--text <file>", "UTF-8 text to score")
    .option("--ctx <n>", "tokens per window", intOption("--ctx", 2), 256)
    .option("--stride <n>", "tokens between window starts (default ctx / 2)", intOption("--stride", 1))
    .option("--max-tokens <n>", "score only the first N tokens of the text", intOption("--max-tokens", 2));
}

export function registerEval(program: Command): void {
  const ev = program.command("eval").description("accuracy over a text: perplexity, or agreement between two models");
  common(ev.command("ppl").description("perplexity of a model over a text (sliding windows)")).action(async (f: EvalFlags) => {
    const { tokens, model } = await readTokens(f.model, f);
    const bar = progressBar("ppl");
    try {
      const t0 = performance.now();
      const r = perplexity(model.engine, tokens, { ctx: f.ctx, stride: f.stride ?? Math.max(1, f.ctx >> 1), onProgress: bar.update });
      bar.stop();
      console.log(`perplexity ${r.perplexity.toFixed(4)} (nll ${r.nll.toFixed(5)} nats/token over ${r.tokens} tokens, ctx ${f.ctx}, ${((performance.now() - t0) / 1000).toFixed(2)} s)`);
    } finally {
      bar.stop();
      model.close();
    }
  });
  common(ev.command("compare").description("top-1 agreement and mean KL(model || against) of next-token distributions"))
    .requiredOption("--against <spec>", "the model to compare with (same vocabulary)")
    .action(async (f: EvalFlags) => {
      const { tokens, model } = await readTokens(f.model, f);
      const other = await openEvalModel(f.against!, f.ctx, { onProgress: cliProgressReporter() });
      const bar = progressBar("compare");
      try {
        const r = compareModels(model.engine, other.engine, tokens, { ctx: f.ctx, stride: f.stride ?? Math.max(1, f.ctx >> 1), onProgress: bar.update });
        bar.stop();
        console.log(`top-1 agreement ${r.top1Agreement.toFixed(4)}, mean KL ${r.meanKl.toExponential(3)} nats (max ${r.maxKl.toExponential(3)}), max |logit diff| ${r.maxLogitDiff.toExponential(3)} over ${r.positions} positions`);
      } finally {
        bar.stop();
        model.close();
        other.close();
      }
    });
}

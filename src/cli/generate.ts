/**
 * llmrt generate: complete one or more prompts. Without --json, stdout carries only
 * the generated text, streamed; stats go to stderr. With --json, stdout gets one
 * single-line JSON object per prompt, in prompt order.
 */
import { readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { KV_DTYPES, type KvDType } from "../backends/backend.js";
import { LLM } from "../api/llm.js";
import { DEFAULT_MODEL } from "../api/load-model.js";
import type { RequestOutput } from "../api/outputs.js";
import type { SamplingParamsInput } from "../runtime/sampling-params.js";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { setDefaultCpuThreads } from "../backends/cpu/backend.js";
import type { DTypeChoice } from "../engine/options.js";
import { collect, dtypeOption, floatOption, intOption, reportTarget, samplingFilterOptions, TARGET_HELP } from "./options.js";

interface GenerateFlags {
  model: string;
  tokenizer?: string;
  prompt: string[];
  promptsFile?: string;
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop: string[];
  ignoreEos?: boolean;
  json?: boolean;
  maxSeqs?: number;
  maxBatchTokens?: number;
  maxSeqLen?: number;
  kvCacheBytes?: number;
  kvDtype: KvDType;
  dtype: DTypeChoice;
  target?: string;
  threads?: number;
  speculative?: string;
  beamWidth?: number;
  lengthPenalty: number;
  earlyStopping: "true" | "false" | "never";
  n: number;
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command("generate")
    .description("generate text from one or more prompts")
    .option("--model <path>", "checkpoint file or directory, Hugging Face id (org/name[@rev][/file]), or synthetic:tiny", DEFAULT_MODEL)
    .option("--tokenizer <path>", "tokenizer.json, llama2.c tokenizer file or GGUF, overriding the model's own")
    .option("--prompt <text>", "prompt text (repeat for a batch)", collect, [])
    .option("--prompts-file <file>", "one prompt per line, run as one batch")
    .option("--max-tokens <n>", "most tokens to generate per prompt", intOption("--max-tokens", 1), 256)
    .option("--temperature <t>", "sampling temperature; 0 = greedy", floatOption("--temperature"), 0.8);
  samplingFilterOptions(cmd)
    .option("--presence-penalty <p>", "OpenAI presence penalty", floatOption("--presence-penalty"))
    .option("--frequency-penalty <p>", "OpenAI frequency penalty", floatOption("--frequency-penalty"))
    .option("--seed <s>", "random seed: same seed, same output", intOption("--seed"))
    .option("--stop <text>", "stop string (repeatable)", collect, [])
    .option("--ignore-eos", "keep generating past end-of-sequence")
    .option("--json", "print one JSON object per prompt instead of streaming text")
    .option("--max-seqs <n>", "sequences in flight at once", intOption("--max-seqs", 1))
    .option("--max-batch-tokens <n>", "tokens per engine step", intOption("--max-batch-tokens", 1))
    .option("--max-seq-len <n>", "longest sequence (prompt + output) the engine holds", intOption("--max-seq-len", 2))
    .option("--kv-cache-bytes <n>", "KV cache budget in bytes (default: enough for --max-seqs full sequences, at most 40% of free memory)", intOption("--kv-cache-bytes", 1))
    .addOption(new Option("--kv-dtype <type>", "KV cache storage type (int8: a scale per head and slot, cpu and reference targets; fp8: cuda target, sm_89+)").choices(KV_DTYPES).default("f32"))
    .addOption(dtypeOption())
    .option("--target <name>", TARGET_HELP, "auto")
    .option("--threads <n>", "threads for --target cpu (default: all cores)", intOption("--threads", 1))
    .option("--speculative <spec>", 'speculative decoding: "ngram,k=4,n=3" or "draft:PATH,k=4"')
    .option("--beam-width <w>", "beam search with this many beams (1-10) instead of sampling", intOption("--beam-width", 1))
    .option("--length-penalty <x>", "beam search: exponent on the output length in the score", floatOption("--length-penalty"), 1)
    .addOption(new Option("--early-stopping <when>", "beam search: stop at beam-width finished hypotheses (true), when none can improve (false), or never").choices(["true", "false", "never"]).default("false"))
    .option("-n <n>", "beam search: hypotheses to return, best first", intOption("-n", 1), 1)
    .action(async (flags: GenerateFlags) => runGenerate(flags));
}

async function runGenerate(f: GenerateFlags): Promise<void> {
  const prompts = [...f.prompt];
  if (f.promptsFile) prompts.push(...readFileSync(f.promptsFile, "utf8").split("\n").filter((l) => l.length > 0));
  if (prompts.length === 0) prompts.push("");

  const t0 = performance.now();
  setDefaultCpuThreads(f.threads);
  const llm = await LLM.load(f.model, {
    target: f.target,
    threads: f.threads,
    dtype: f.dtype,
    tokenizer: f.tokenizer,
    maxSeqs: f.maxSeqs ?? Math.min(prompts.length, 64),
    maxBatchTokens: f.maxBatchTokens,
    maxSeqLen: f.maxSeqLen,
    kvCacheBytes: f.kvCacheBytes,
    kvDtype: f.kvDtype,
    speculative: f.speculative,
    onProgress: cliProgressReporter(),
  });
  const loadMs = performance.now() - t0;
  reportTarget(llm.target);
  if (llm.randomWeights) console.error(`llmrt: note: ${f.model} has random weights; its output is noise, for trying llmrt out`);

  const params: SamplingParamsInput = {
    maxTokens: f.maxTokens,
    temperature: f.temperature,
    topK: f.topK,
    topP: f.topP,
    minP: f.minP,
    repetitionPenalty: f.repetitionPenalty,
    presencePenalty: f.presencePenalty,
    frequencyPenalty: f.frequencyPenalty,
    seed: f.seed,
    stop: f.stop,
    ignoreEos: f.ignoreEos,
  };
  const started = performance.now();
  let results: RequestOutput[];
  if (f.beamWidth !== undefined) {
    const early = f.earlyStopping === "never" ? "never" : f.earlyStopping === "true";
    results = await Promise.all(
      prompts.map((p) => llm.beamSearch(p, { beamWidth: f.beamWidth!, maxTokens: f.maxTokens, lengthPenalty: f.lengthPenalty, earlyStopping: early, n: f.n, ignoreEos: f.ignoreEos })),
    );
    if (!f.json) for (const r of results) process.stdout.write(r.outputs.map((o) => o.text).join("\n") + "\n");
  } else if (!f.json && prompts.length === 1) {
    // stream the continuation as it is produced
    let last: RequestOutput | undefined;
    for await (const o of llm.generateStream(prompts[0], params)) {
      process.stdout.write(o.outputs[0].delta);
      last = o;
    }
    process.stdout.write("\n");
    results = [last!];
  } else {
    results = await llm.generate(prompts, params);
  }
  const wallMs = performance.now() - started;
  const stats = llm.stats();
  llm.close();

  for (const r of results) {
    const out = r.outputs[0];
    const ttftMs = (r.metrics.timeToFirstToken ?? 0) * 1000;
    const e2eMs = (r.metrics.e2eLatency ?? 0) * 1000;
    const decodeTokens = out.tokenIds.length - 1;
    const timings = {
      load_ms: round(loadMs),
      ttft_ms: round(ttftMs),
      total_ms: round(e2eMs),
      prompt_tokens_per_s: round(r.promptTokenIds.length / (ttftMs / 1000)),
      decode_tokens_per_s: decodeTokens > 0 ? round(decodeTokens / ((e2eMs - ttftMs) / 1000)) : null,
    };
    if (f.json) {
      process.stdout.write(
        JSON.stringify({
          prompt_token_ids: r.promptTokenIds,
          output_token_ids: out.tokenIds,
          text: out.text,
          finish_reason: out.finishReason,
          timings,
          ...(f.beamWidth !== undefined
            ? { beams: r.outputs.map((o) => ({ output_token_ids: o.tokenIds, text: o.text, cumulative_logprob: o.cumulativeLogprob, score: o.score, finish_reason: o.finishReason })) }
            : {}),
          ...(llm.randomWeights ? { random_weights: true } : {}),
        }) + "\n",
      );
    } else if (prompts.length > 1) {
      process.stdout.write(out.text + "\n");
    }
  }
  const totalOut = results.reduce((n, r) => n + r.outputs[0].tokenIds.length, 0);
  console.error(
    `llmrt: ${results.length} prompt(s), ${totalOut} tokens in ${round(wallMs)} ms (${round(totalOut / (wallMs / 1000))} tok/s), load ${round(loadMs)} ms`,
  );
  if (stats.specDraftTokens > 0) {
    console.error(`llmrt: speculative: ${round(stats.specAcceptanceRate * 100)}% of ${stats.specDraftTokens} draft tokens accepted, ${round(stats.specMeanAcceptedLength)} tokens per verification`);
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

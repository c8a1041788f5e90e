/**
 * llmrt serve: the OpenAI-compatible HTTP server with /metrics and a chat page at /.
 * SIGTERM / SIGINT stop accepting, let in-flight requests finish within
 * --shutdown-timeout, abort the rest, and exit 0.
 */
import { Option, type Command } from "commander";
import { KV_DTYPES, type KvDType } from "../backends/backend.js";
import { DEFAULT_MODEL } from "../api/load-model.js";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { startServer } from "../server/server.js";
import { describeTarget } from "../engine/targets.js";
import type { DTypeChoice } from "../engine/options.js";
import { dtypeOption, intOption, TARGET_HELP } from "./options.js";

interface ServeFlags {
  model: string;
  tokenizer?: string;
  host: string;
  port: number;
  apiKey?: string;
  servedModelName?: string;
  maxSeqs?: number;
  maxBatchTokens?: number;
  maxSeqLen?: number;
  kvCacheBytes?: number;
  cors?: string;
  bodyLimit?: number;
  shutdownTimeout: number;
  speculative?: string;
  kvDtype: KvDType;
  dtype: DTypeChoice;
  target: string;
  threads?: number;
  toolCallParser?: string;
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API, with /metrics and a chat page at /")
    .option("--model <path>", "checkpoint file or directory, engine, Hugging Face id, or synthetic:tiny", DEFAULT_MODEL)
    .option("--tokenizer <path>", "tokenizer.json, llama2.c tokenizer file or GGUF, overriding the model's own")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 = any free port)", intOption("--port", 0), 8000)
    .option("--api-key <key>", "require `Authorization: Bearer <key>` on /v1/* (default: $LLMRT_API_KEY)", process.env.LLMRT_API_KEY)
    .option("--served-model-name <name>", "the model name clients use (default: the --model value)")
    .option("--max-seqs <n>", "sequences in flight at once", intOption("--max-seqs", 1))
    .option("--max-batch-tokens <n>", "tokens per engine step", intOption("--max-batch-tokens", 1))
    .option("--max-seq-len <n>", "longest sequence (prompt + output) the engine holds", intOption("--max-seq-len", 2))
    .option("--kv-cache-bytes <n>", "KV cache budget in bytes", intOption("--kv-cache-bytes", 1))
    .option("--speculative <spec>", 'speculative decoding: "ngram,k=4,n=3" (prompt lookup) or "draft:PATH,k=4" (a draft model)')
    .option("--target <name>", TARGET_HELP, "auto")
    .option("--threads <n>", "threads for the cpu target (default: all cores)", intOption("--threads", 1))
    .addOption(dtypeOption())
    .addOption(new Option("--kv-dtype <type>", "KV cache storage type (int8: a scale per head and slot, cpu and reference targets; fp8: cuda target, sm_89+)").choices(KV_DTYPES).default("f32"))
    .addOption(new Option("--tool-call-parser <format>", "how the model writes tool calls, when its chat template does not show it").choices(["hermes", "llama3_json", "mistral"]))
    .option("--cors <origins>", "allow cross-origin requests from these origins (comma-separated, or *)")
    .option("--body-limit <bytes>", "largest request body", intOption("--body-limit", 1))
    .option("--shutdown-timeout <ms>", "on SIGTERM, how long in-flight requests may take before they are aborted", intOption("--shutdown-timeout", 0), 30_000)
    .action(async (flags: ServeFlags) => runServe(flags));
}

async function runServe(f: ServeFlags): Promise<void> {
  const t0 = performance.now();
  const server = await startServer({
    model: f.model,
    tokenizer: f.tokenizer,
    host: f.host,
    port: f.port,
    apiKey: f.apiKey,
    servedModelName: f.servedModelName,
    maxSeqs: f.maxSeqs ?? 64,
    maxBatchTokens: f.maxBatchTokens,
    maxSeqLen: f.maxSeqLen,
    kvCacheBytes: f.kvCacheBytes,
    speculative: f.speculative,
    kvDtype: f.kvDtype,
    dtype: f.dtype,
    target: f.target,
    threads: f.threads,
    toolCallParser: f.toolCallParser,
    cors: f.cors,
    bodyLimit: f.bodyLimit,
    onProgress: cliProgressReporter(),
  });
  console.error(`llmrt serve: listening on ${server.url} (loading ${f.model}; /health is 503 until ready)`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`llmrt serve: ${signal}: finishing in-flight requests (up to ${f.shutdownTimeout} ms)`);
    server.close(f.shutdownTimeout).then(
      () => process.exit(0),
      (e: unknown) => (console.error("llmrt serve: shutdown failed:", e), process.exit(1)),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // an engine thread that dies while serving takes the server down, so a supervisor restarts it
  server.ready.then(
    () =>
      server.llm.stopped.then((e) => {
        if (stopping) return;
        console.error(`llmrt serve: the engine stopped: ${e.message}`);
        process.exit(1);
      }),
    () => {}, // a failed load is reported below
  );

  try {
    const info = await server.ready;
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    console.error(`llmrt serve: ${server.ctx.servedModelName} ready in ${secs} s on ${describeTarget(info.target)}: context ${info.maxSeqLen} tokens, ${info.kvBlocksTotal} KV blocks of ${info.blockSize}`);
    if (info.randomWeights) console.error(`llmrt serve: note: ${f.model} has random weights; its output is noise, for trying llmrt out`);
    console.error(`llmrt serve: chat page ${server.url}/  API ${server.url}/v1  metrics ${server.url}/metrics`);
  } catch (e) {
    await server.close(0);
    throw e; // main prints typed errors without a stack
  }
}

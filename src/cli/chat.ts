/**
 * llmrt chat: an interactive terminal chat through the model's chat template, with
 * streamed replies and the conversation kept as history. /reset clears it, /exit (or
 * Ctrl-D) leaves; Ctrl-C stops a reply being generated. Old turns are dropped when the
 * conversation outgrows the context.
 */
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { LLM } from "../api/llm.js";
import { DEFAULT_MODEL } from "../api/load-model.js";
import { cliProgressReporter } from "../checkpoint/hub.js";
import { OptionError } from "../errors.js";
import type { SamplingParamsInput } from "../runtime/sampling-params.js";
import { applyTokenizerChatTemplate, encodeChatPrompt, type ChatMessage } from "../tokenizer/chat-template.js";
import type { DTypeChoice } from "../engine/options.js";
import { dtypeOption, floatOption, intOption, reportTarget, samplingFilterOptions, TARGET_HELP } from "./options.js";

interface ChatFlags {
  model: string;
  tokenizer?: string;
  system?: string;
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  maxSeqLen?: number;
  dtype: DTypeChoice;
  target: string;
  threads?: number;
}

export function registerChat(program: Command): void {
  const cmd = program
    .command("chat")
    .description("chat with a model in the terminal (its chat template, streamed replies, history; /reset, /exit)")
    .option("--model <path>", "checkpoint file or directory, engine, Hugging Face id, or synthetic:tiny", DEFAULT_MODEL)
    .option("--tokenizer <path>", "tokenizer.json, llama2.c tokenizer file or GGUF, overriding the model's own")
    .option("--system <text>", "system prompt")
    .option("--max-tokens <n>", "most tokens per reply", intOption("--max-tokens", 1), 512)
    .option("--temperature <t>", "sampling temperature; 0 = greedy", floatOption("--temperature"), 0.7);
  samplingFilterOptions(cmd)
    .option("--seed <s>", "random seed", intOption("--seed"))
    .option("--max-seq-len <n>", "longest conversation (prompt + reply) in tokens", intOption("--max-seq-len", 2))
    .addOption(dtypeOption())
    .option("--target <name>", TARGET_HELP, "auto")
    .option("--threads <n>", "threads for the cpu target (default: all cores)", intOption("--threads", 1))
    .action(async (flags: ChatFlags) => runChat(flags));
}

async function runChat(f: ChatFlags): Promise<void> {
  const llm = await LLM.load(f.model, { tokenizer: f.tokenizer, maxSeqs: 1, maxSeqLen: f.maxSeqLen, dtype: f.dtype, target: f.target, threads: f.threads, onProgress: cliProgressReporter() });
  reportTarget(llm.target);
  if (llm.tokenizer.chatTemplate === null) {
    llm.close();
    throw new OptionError("--model", "this model's tokenizer has no chat template, so there is no way to format a conversation for it", "use `llmrt generate` for plain completion, or pass a tokenizer that has a template with --tokenizer");
  }
  const out = process.stdout;
  const note = (s: string) => process.stderr.write(process.stderr.isTTY ? `\x1b[2m${s}\x1b[0m\n` : `${s}\n`);
  if (llm.randomWeights) note(`note: ${f.model} has random weights; its replies are noise`);
  note("type a message; /reset clears the conversation, /exit leaves, Ctrl-C stops a reply");

  const params: SamplingParamsInput = { maxTokens: f.maxTokens, temperature: f.temperature, topK: f.topK, topP: f.topP, minP: f.minP, repetitionPenalty: f.repetitionPenalty, seed: f.seed };
  const system: ChatMessage[] = f.system ? [{ role: "system", content: f.system }] : [];
  let history: ChatMessage[] = [];
  let reply: AbortController | null = null;


  const rl = createInterface({ input: process.stdin, output: out, terminal: process.stdin.isTTY });
  rl.on("SIGINT", () => (reply ? reply.abort() : rl.close()));
  const prompt = () => out.write(out.isTTY ? "\x1b[1m> \x1b[0m" : "> ");
  try {
    prompt();
    // the line iterator buffers input typed (or piped) while a reply is generated
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === "/exit" || line === "/quit") break;
      if (line === "/reset") {
        history = [];
        note("(conversation cleared)");
      } else if (line === "/help") {
        note("/reset clears the conversation, /exit leaves");
      } else if (line !== "") {
        history = await turn(line);
      }
      prompt();
    }
  } finally {
    rl.close();
    llm.close();
    out.write("\n");
  }

  /** One exchange: the user's line in, the streamed reply out; returns the new history. */
  async function turn(line: string): Promise<ChatMessage[]> {
    const fit = fitContext(llm, system, [...history, { role: "user", content: line }], f.maxTokens);
    if (fit.ids === null) {
      note(`(that message alone does not fit the context of ${llm.core.maxSeqLen} tokens with room for a reply)`);
      return history;
    }
    if (fit.dropped > 0) note(`(dropped the ${fit.dropped} oldest message(s) to fit the context)`);
    reply = new AbortController();
    let text = "";
    try {
      const maxTokens = Math.min(f.maxTokens, llm.core.maxSeqLen - fit.ids.length);
      for await (const o of llm.generateStream({ promptTokenIds: fit.ids }, { ...params, maxTokens }, { signal: reply.signal })) {
        out.write(o.outputs[0].delta);
        text = o.outputs[0].text;
      }
    } finally {
      reply = null;
    }
    out.write("\n");
    return [...fit.history, { role: "assistant", content: text }];
  }
}

/** The prompt ids for the conversation, dropping the oldest turns until it leaves room for a reply. */
function fitContext(llm: LLM, system: ChatMessage[], history: ChatMessage[], maxTokens: number): { ids: number[] | null; history: ChatMessage[]; dropped: number } {
  const room = Math.min(maxTokens, Math.max(1, llm.core.maxSeqLen >> 2)); // keep at least a quarter for the reply
  let dropped = 0;
  for (;;) {
    const ids = encodeChatPrompt(llm.tokenizer, applyTokenizerChatTemplate(llm.tokenizer, [...system, ...history]));
    if (ids.length + room <= llm.core.maxSeqLen) return { ids, history, dropped };
    if (history.length <= 1) return { ids: null, history, dropped };
    history = history.slice(1);
    dropped++;
  }
}

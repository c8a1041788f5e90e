/**
 * The engine thread. Loads the model with LLM.load and drives it; the HTTP thread
 * talks to it only through messages (worker-protocol.ts), so a long engine step
 * never delays an HTTP response. LLM's step loop yields between steps, which is
 * when this thread reads new requests, aborts and stats calls.
 */
import { parentPort, workerData } from "node:worker_threads";
import { LLM } from "../api/llm.js";
import type { CompletionOutput } from "../api/outputs.js";
import { OptionError } from "../errors.js";
import type { TokenLogprob } from "../runtime/request.js";
import { applyTokenizerChatTemplate, encodeChatPrompt, type ChatMessage } from "../tokenizer/chat-template.js";
import { resolveToolCallFormat } from "../tools/index.js";
import { TokenTextCache } from "./token-text.js";
import { toWire, type Call, type FromWorker, type ModelInfo, type OutputDelta, type TextLogprob, type ToWorker, type WorkerInit } from "./worker-protocol.js";

const port = parentPort!;
const init = workerData as WorkerInit;

/**
 * Messages go out in batches: everything posted while one engine step's updates are
 * handed out (all in microtasks) leaves in one postMessage, which costs the engine
 * thread far less than one per request. process.nextTick runs only once the
 * microtask queue has drained, so a batch never waits for the next step.
 */
let outbox: FromWorker[] = [];
function post(m: FromWorker): void {
  outbox.push(m);
  if (outbox.length === 1) process.nextTick(flush);
}
function flush(): void {
  const batch = outbox;
  outbox = [];
  port.postMessage(batch);
}

let llm: LLM | null = null;
let texts: TokenTextCache;
const aborts = new Map<number, AbortController>();

async function load(): Promise<void> {
  const options = { ...init.options, onProgress: (p: { file: string; downloaded: number; total: number }) => post({ type: "progress", ...p }) };
  llm = await LLM.load(init.model, options);
  texts = new TokenTextCache(llm.tokenizer);
  const s = llm.stats();
  const info: ModelInfo = {
    model: init.model,
    randomWeights: llm.randomWeights,
    maxSeqLen: llm.core.maxSeqLen,
    vocabSize: llm.core.engine.config.vocabSize,
    hasChatTemplate: llm.tokenizer.chatTemplate !== null,
    toolCallFormat: resolveToolCallFormat(llm.tokenizer.chatTemplate, init.toolCallParser),
    kvBlocksTotal: s.kvBlocksTotal,
    blockSize: llm.core.pool.blockSize,
    target: llm.target,
  };
  post({ type: "ready", info });
}

/** Streams one request back as deltas: only what each output gained since the last message. */
async function generate(m: Extract<ToWorker, { type: "generate" }>): Promise<void> {
  const ac = new AbortController();
  aborts.set(m.id, ac);
  const sentTokens: number[] = [];
  const sentFinished: boolean[] = [];
  let first = true;
  try {
    for await (const o of llm!.generateStream(m.prompt, m.params, { signal: ac.signal, priority: m.priority })) {
      const outputs: OutputDelta[] = [];
      for (const c of o.outputs) {
        const prev = sentTokens[c.index] ?? 0;
        const done = c.finishReason !== null;
        if (c.tokenIds.length === prev && c.delta === "" && done === (sentFinished[c.index] ?? false)) continue;
        outputs.push(delta(c, prev));
        sentTokens[c.index] = c.tokenIds.length;
        sentFinished[c.index] = done;
      }
      const promptLogprobs = first ? o.promptLogprobs?.map((lp, i) => (lp ? withText(lp) : { token: o.promptTokenIds[i], ...texts.get(o.promptTokenIds[i]), logprob: null })) : undefined;
      post({ type: "output", id: m.id, promptTokenIds: first ? o.promptTokenIds : undefined, promptLogprobs, outputs, finished: o.finished, metrics: o.metrics });
      first = false;
    }
  } catch (e) {
    const failed = llm?.failure;
    if (failed) post({ type: "engine-failed", error: toWire(failed) }); // before the request's error: /health agrees with it
    post({ type: "gen-error", id: m.id, error: toWire(e) });
  } finally {
    aborts.delete(m.id);
  }
}

function delta(c: CompletionOutput, prev: number): OutputDelta {
  const d: OutputDelta = { index: c.index, delta: c.delta, tokenIds: c.tokenIds.slice(prev), finishReason: c.finishReason, stopReason: c.stopReason };
  if (c.logprobs) d.logprobs = c.logprobs.slice(prev).map(withText);
  return d;
}

function withText(lp: TokenLogprob): TextLogprob {
  return { ...lp, ...texts.get(lp.token), top: lp.top?.map((t) => ({ ...t, ...texts.get(t.token) })) };
}

function call(c: Call): unknown {
  const l = llm!;
  switch (c.method) {
    case "stats":
      return l.stats();
    case "encode":
      return l.tokenizer.encode(c.args[0], c.args[1] ? {} : { addBos: false });
    case "decode": {
      const V = l.core.engine.config.vocabSize;
      const bad = c.args[0].find((t) => !Number.isInteger(t) || t < 0 || t >= V);
      if (bad !== undefined) throw new OptionError("tokens", `token id ${bad} is outside the vocabulary [0, ${V})`);
      return l.tokenizer.decode(c.args[0]);
    }
    case "renderChat": {
      const [messages, opts] = c.args;
      const prompt = applyTokenizerChatTemplate(l.tokenizer, messages as ChatMessage[], { addGenerationPrompt: opts.addGenerationPrompt, extra: opts.extra, tools: opts.tools });
      return { prompt, promptTokenIds: encodeChatPrompt(l.tokenizer, prompt) };
    }
  }
}

port.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "generate":
      void generate(m);
      break;
    case "abort":
      aborts.get(m.id)?.abort();
      break;
    case "call":
      try {
        post({ type: "result", callId: m.callId, value: call(m) });
      } catch (e) {
        post({ type: "result", callId: m.callId, error: toWire(e) });
      }
      break;
    case "close":
      llm?.close();
      // after the aborted streams have posted their last outputs (they resume in microtasks)
      setImmediate(() => post({ type: "closed" }));
      break;
  }
});

load().catch((e: unknown) => post({ type: "load-error", error: toWire(e) }));

/**
 * The LLM API, served from a worker thread: the same call shape as LLM
 * (generateStream with an AbortSignal, stats, encode/decode, chat rendering), but
 * every call is a message to the engine thread, so the HTTP event loop only ever
 * waits on I/O. Routes are a thin adapter over this.
 */
import { Worker } from "node:worker_threads";
import type { GenerateOptions, LLMOptions, Prompt } from "../api/llm.js";
import type { CompletionOutput, RequestOutput } from "../api/outputs.js";
import { LlmrtError } from "../errors.js";
import type { CoreStats } from "../runtime/engine-core.js";
import type { SamplingParamsInput } from "../runtime/sampling-params.js";
import {
  WorkerError,
  type Call,
  type ChatRender,
  type ChatRenderOptions,
  type FromWorker,
  type ModelInfo,
  type PromptTokenLogprob,
  type TextLogprob,
  type ToWorker,
  type WorkerInit,
} from "./worker-protocol.js";

/** LLMOptions, which must survive postMessage: plain data, plus onProgress (called on this thread). */
export type WorkerLLMOptions = LLMOptions;

export interface ServedCompletionOutput extends CompletionOutput {
  logprobs?: TextLogprob[];
}

/**
 * One streamed result. Unlike LLM's, `tokenIds` and `logprobs` are the live
 * cumulative arrays (they keep growing as the stream goes on): copy them to keep a snapshot.
 */
export interface ServedRequestOutput extends RequestOutput {
  outputs: ServedCompletionOutput[];
  /** When requested: every prompt token with its logprob (null for the first). */
  promptTokenLogprobs?: PromptTokenLogprob[];
}

type Message = Extract<FromWorker, { type: "output" | "gen-error" }>;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/**
 * Starts the engine thread from worker.js next to this module (dist). Under tsx the
 * module is worker.ts, and Node 20 does not apply `--import tsx` to a worker's
 * execArgv, so a small bootstrap registers tsx's loader in the worker first.
 */
function spawnWorker(workerData: WorkerInit): Worker {
  const here = import.meta.url;
  if (!here.endsWith(".ts")) return new Worker(new URL("./worker.js", here), { workerData });
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./worker.ts", here).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

export class WorkerLLM {
  /** Resolves once the model is loaded; rejects with the load error. */
  readonly ready: Promise<ModelInfo>;
  info: ModelInfo | null = null;
  private readonly worker: Worker;
  private readonly streams = new Map<number, (m: Message) => void>();
  private readonly calls = new Map<number, Pending>();
  private nextId = 0;
  private dead: Error | null = null;
  private broken: Error | null = null;
  private onClosed: (() => void) | null = null;
  private onStopped!: (e: Error) => void;
  /** Resolves with the reason once the engine thread is gone for good (closed, crashed, failed to load). */
  readonly stopped = new Promise<Error>((r) => (this.onStopped = r));

  private constructor(init: WorkerInit, onProgress?: LLMOptions["onProgress"]) {
    this.worker = spawnWorker(init);
    this.ready = new Promise<ModelInfo>((resolve, reject) => {
      const handle = (m: FromWorker) => {
        if (m.type === "ready") {
          this.info = m.info;
          resolve(m.info);
        } else if (m.type === "load-error") {
          const e = new WorkerError(m.error);
          this.fail(e);
          reject(e);
        } else if (m.type === "progress") onProgress?.(m);
        else this.dispatch(m);
      };
      this.worker.on("message", (batch: FromWorker[]) => batch.forEach(handle)); // see worker.ts: messages come in batches
      this.worker.on("error", (e) => (this.fail(e), reject(e)));
      this.worker.on("exit", (code) => {
        const e = new LlmrtError("worker", `the engine thread exited (code ${code})`);
        this.fail(e);
        reject(e);
      });
    });
    this.ready.catch(() => {}); // observed by whoever awaits it; never an unhandled rejection
  }

  /** Starts the engine thread and begins loading; returns at once (await `ready`). */
  static start(model: string, opts: WorkerLLMOptions = {}, toolCallParser?: string): WorkerLLM {
    const { onProgress, ...options } = opts;
    return new WorkerLLM({ model, options, toolCallParser }, onProgress);
  }

  /** Why the engine thread is gone (crashed, failed to load, closed), or null while it runs. */
  get failure(): Error | null {
    return this.dead;
  }

  /** Why the engine can no longer run while its thread is up (a rank died), or null. */
  get engineFailure(): Error | null {
    return this.broken;
  }

  get inFlight(): number {
    return this.streams.size;
  }

  async *generateStream(prompt: Prompt, params: SamplingParamsInput = {}, opts: GenerateOptions = {}): AsyncIterable<ServedRequestOutput> {
    await this.ready;
    this.throwIfDead();
    const id = this.nextId++;
    const inbox: Message[] = [];
    let wake: (() => void) | null = null;
    this.streams.set(id, (m) => (inbox.push(m), wake?.()));
    let finished = false;
    const withLogprobs = params.logprobs !== undefined && params.logprobs !== null;
    const onAbort = () => this.send({ type: "abort", id });
    this.send({ type: "generate", id, prompt, params, priority: opts.priority ?? 0 });
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let out: ServedRequestOutput | null = null;
      while (!finished) {
        if (inbox.length === 0) await new Promise<void>((r) => (wake = r));
        wake = null;
        const m = inbox.shift()!;
        if (m.type === "gen-error") {
          finished = true;
          throw new WorkerError(m.error);
        }
        out ??= {
          requestId: `req-${id}`,
          prompt: typeof prompt === "string" ? prompt : null,
          promptTokenIds: m.promptTokenIds ?? [],
          // every sample up front: the first message may carry any of them
          outputs: Array.from({ length: params.n ?? 1 }, (_, index) => ({ index, text: "", delta: "", tokenIds: [], finishReason: null, stopReason: null, ...(withLogprobs ? { logprobs: [] } : {}) })),
          finished: false,
          metrics: m.metrics,
        };
        if (m.promptLogprobs) {
          out.promptTokenLogprobs = m.promptLogprobs;
          out.promptLogprobs = m.promptLogprobs.map((e) => (e.logprob === null ? null : { ...e, logprob: e.logprob }));
        }
        for (const o of out.outputs) o.delta = "";
        for (const d of m.outputs) {
          const o = out.outputs[d.index];
          o.delta = d.delta;
          o.text += d.delta;
          for (const t of d.tokenIds) o.tokenIds.push(t);
          if (d.logprobs) for (const lp of d.logprobs) (o.logprobs ??= []).push(lp);
          o.finishReason = d.finishReason;
          o.stopReason = d.stopReason;
        }
        finished = m.finished;
        out.finished = finished;
        out.metrics = m.metrics;
        yield { ...out, outputs: out.outputs.map((o) => ({ ...o })) };
      }
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      if (!finished && !this.dead) onAbort(); // the consumer stopped early: cancel the rest
      this.streams.delete(id);
    }
  }

  stats(): Promise<CoreStats> {
    return this.call({ method: "stats", args: [] }) as Promise<CoreStats>;
  }

  /** Token ids of `text`; addSpecial adds BOS the way prompts get it. */
  encode(text: string, addSpecial = true): Promise<number[]> {
    return this.call({ method: "encode", args: [text, addSpecial] }) as Promise<number[]>;
  }

  decode(ids: number[]): Promise<string> {
    return this.call({ method: "decode", args: [ids] }) as Promise<string>;
  }

  /** Applies the model's chat template; the result's ids are what generation should be fed. */
  renderChat(messages: unknown[], opts: ChatRenderOptions = {}): Promise<ChatRender> {
    return this.call({ method: "renderChat", args: [messages, opts] }) as Promise<ChatRender>;
  }

  /** Aborts everything in flight and stops the engine thread. */
  async close(): Promise<void> {
    if (!this.dead) {
      const closed = new Promise<void>((r) => (this.onClosed = r));
      this.send({ type: "close" });
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      this.fail(new LlmrtError("closed", "the model server is shut down"));
    }
    await this.worker.terminate(); // also after a failed load, whose thread would idle on
  }

  private async call(c: Call): Promise<unknown> {
    await this.ready;
    this.throwIfDead();
    const callId = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(callId, { resolve, reject });
      this.send({ type: "call", callId, ...c } as ToWorker);
    });
  }

  private dispatch(m: FromWorker): void {
    if (m.type === "output" || m.type === "gen-error") this.streams.get(m.id)?.(m);
    else if (m.type === "result") {
      const p = this.calls.get(m.callId);
      this.calls.delete(m.callId);
      if (m.error) p?.reject(new WorkerError(m.error));
      else p?.resolve(m.value);
    } else if (m.type === "engine-failed") this.broken ??= new WorkerError(m.error);
    else if (m.type === "closed") this.onClosed?.();
  }

  private send(m: ToWorker): void {
    if (!this.dead) this.worker.postMessage(m);
  }

  private throwIfDead(): void {
    if (this.dead) throw this.dead;
  }

  /** The engine thread is gone: every caller gets the error instead of hanging. */
  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    this.onStopped(e);
    for (const p of this.calls.values()) p.reject(e);
    this.calls.clear();
    for (const [id, s] of this.streams) s({ type: "gen-error", id, error: { name: e.name, message: e.message, code: "worker" } });
  }
}

/**
 * The public LLM API, after TensorRT-LLM's LLM API in TypeScript idiom:
 *
 *   const llm = await LLM.load("path/or/org/name");
 *   const [out] = await llm.generate(["Once upon a time"], { maxTokens: 32, temperature: 0 });
 *   for await (const o of llm.generateStream("Hi", { maxTokens: 16 })) process.stdout.write(o.outputs[0].delta);
 *
 * One engine core serves every call: requests from concurrent calls are batched
 * together in flight. The step loop yields to the event loop between steps.
 */
import { Engine, type EngineOptions } from "../engine/engine.js";
import { OptionError } from "../errors.js";
import { EngineCore, type CoreStats, type RequestUpdate } from "../runtime/engine-core.js";
import type { Request } from "../runtime/request.js";
import { normalizeSamplingParams, type SamplingParamsInput } from "../runtime/sampling-params.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { parseSpeculative, type SpeculativeConfig } from "../runtime/speculative/config.js";
import { beamSearch, type BeamSearchParams } from "../runtime/beam-search.js";
import { MAX_LOGPROBS } from "../runtime/sampling-params.js";
import { loadAnyEngine } from "../parallel/load-engine.js";
import { resolveTarget, type TargetChoice } from "../engine/targets.js";
import { resolveThreads } from "../backends/cpu/backend.js";
import { kvBlocksFor, type KvBudgetOptions } from "./kv-budget.js";
import { DEFAULT_MODEL, loadModel, type LoadModelOptions } from "./load-model.js";
import type { CompletionOutput, RequestOutput } from "./outputs.js";

export interface LLMOptions extends LoadModelOptions, Omit<EngineOptions, "backend" | "maxSeqs" | "maxLogitRows" | "optimize">, Partial<Omit<KvBudgetOptions, "blockSize" | "maxSeqs" | "maxSeqLen">> {
  /** Sequences in flight at once (default 16). */
  maxSeqs?: number;
  /** Tokens per engine step, across sequences (default 512). */
  maxBatchTokens?: number;
  /** Reuse the KV blocks of shared prompt prefixes (default true). */
  enablePrefixCaching?: boolean;
  /** Speculative decoding: "ngram,k=4,n=3" (prompt lookup) or "draft:PATH,k=4" (a draft model), or the parsed form. */
  speculative?: string | SpeculativeConfig;
  /** Backend to build for and run on: cuda, cpu, reference, or auto (default: cuda where a GPU is usable, else cpu; engine/targets.ts). An engine dir runs on the target it was built for. */
  target?: string;
  /** Threads of the cpu target (default: all cores, or $LLMRT_THREADS). */
  threads?: number;
}

export type BeamSearchOptions = Omit<BeamSearchParams, "eosIds">;

/** A prompt as text, or as token ids fed as-is. */
export type Prompt = string | { promptTokenIds: number[] };

export interface GenerateOptions {
  /** Cancels the request; its KV blocks are freed at once. */
  signal?: AbortSignal;
  /** Lower is served first (default 0). */
  priority?: number;
}

interface Listener {
  onUpdate(u: RequestUpdate): void;
  /** The engine step failed: the request ends with this error. */
  onError(e: Error): void;
}

let nextId = 0;

export class LLM {
  private readonly listeners = new Map<string, Listener>();
  private pumping = false;
  private closed = false;

  private constructor(
    readonly core: EngineCore,
    readonly tokenizer: Tokenizer,
    /** True for built-in random-weight models. */
    readonly randomWeights: boolean,
    readonly modelName: string,
    /** The backend the engine runs on, why auto chose it (absent when named, or for an engine dir built for another), its threads on cpu. */
    readonly target: TargetChoice,
  ) {}

  static async load(model: string = DEFAULT_MODEL, opts: LLMOptions = {}): Promise<LLM> {
    // a checkpoint is built into the engine cache once (an engine dir is used as built), then loaded
    const chosen = resolveTarget(opts.target ?? opts.build?.target);
    const build = { dtype: opts.dtype, maxSeqs: opts.maxSeqs, maxBatchTokens: opts.maxBatchTokens, maxSeqLen: opts.maxSeqLen, ...opts.build, target: chosen.target };
    const loaded = await loadModel(model, { ...opts, build });
    try {
      // an engine dir runs where it was built for: a target named otherwise is a mistake to say, not to ignore
      if (!chosen.reason && loaded.engineBuild.target !== chosen.target) {
        throw new OptionError("--target", `${model} is an engine built for target "${loaded.engineBuild.target}", not "${chosen.target}"`, `rebuild it with llmrt build --target ${chosen.target}, or drop --target to run it where it was built for`);
      }
      const config = loaded.config;
      const built = loaded.engineBuild;
      const maxSeqs = opts.maxSeqs ?? Math.min(16, built.maxSeqs);
      const maxBatchTokens = opts.maxBatchTokens ?? Math.min(512, built.maxBatchTokens);
      const blockSize = opts.blockSize ?? 16;
      const maxSeqLen = opts.maxSeqLen ?? built.maxSeqLen;
      const numBlocks = opts.numBlocks ?? kvBlocksFor(config, { ...opts, blockSize, maxSeqs, maxSeqLen });
      const engineOpts = { blockSize, maxSeqs, maxSeqLen, maxBatchTokens, kvDtype: opts.kvDtype, threads: opts.threads };
      const engine = await loadAnyEngine(loaded.engineDir, { ...engineOpts, numBlocks }); // a sharded engine starts its ranks
      const speculative = typeof opts.speculative === "string" ? parseSpeculative(opts.speculative) : opts.speculative;
      let draftEngine: Engine | undefined;
      if (speculative?.method === "draft") {
        const draft = await loadModel(speculative.model, { build });
        draft.checkpoint.close();
        // sequences longer than the draft model's context simply get no drafts
        const draftLen = Math.min(maxSeqLen, draft.engineBuild.maxSeqLen);
        draftEngine = Engine.load(draft.engineDir, { ...engineOpts, maxSeqLen: draftLen, numBlocks: kvBlocksFor(draft.config, { ...opts, blockSize, maxSeqs, maxSeqLen: draftLen }) });
      }
      const core = new EngineCore(engine, loaded.tokenizer, { maxBatchTokens, maxSeqs, enablePrefixCaching: opts.enablePrefixCaching, speculative, draftEngine });
      // only auto reaches here with another target: an engine dir runs on its own
      const runsOn = loaded.engineBuild.target === chosen.target ? chosen : { target: loaded.engineBuild.target };
      const target = runsOn.target === "cpu" ? { ...runsOn, threads: resolveThreads(opts.threads) } : runsOn;
      return new LLM(core, loaded.tokenizer, loaded.randomWeights, model, target);
    } finally {
      loaded.checkpoint.close(); // weights are in the engine now
    }
  }

  /** Encodes a prompt exactly as generate() will. */
  encode(prompt: Prompt): number[] {
    return typeof prompt === "string" ? this.tokenizer.encode(prompt) : prompt.promptTokenIds;
  }

  /** Generates for every prompt (batched in flight); results in prompt order. */
  async generate(prompts: Prompt | Prompt[], params: SamplingParamsInput = {}, opts: GenerateOptions = {}): Promise<RequestOutput[]> {
    const list = Array.isArray(prompts) ? prompts : [prompts];
    return Promise.all(
      list.map(async (p) => {
        let last: RequestOutput | undefined;
        for await (const o of this.generateStream(p, params, opts)) last = o;
        return { ...last!, outputs: last!.outputs.map((c) => ({ ...c, delta: c.text })) };
      }),
    );
  }

  /** Streams one prompt's outputs: one RequestOutput per new token (deltas plus cumulative text). */
  async *generateStream(prompt: Prompt, params: SamplingParamsInput = {}, opts: GenerateOptions = {}): AsyncIterable<RequestOutput> {
    if (this.closed) throw new OptionError("LLM", "is closed");
    const sp = normalizeSamplingParams(params);
    const promptIds = this.encode(prompt);
    const requestId = `req-${nextId++}`;
    const queue: RequestUpdate[] = [];
    let wake: (() => void) | null = null;
    let failed: Error | null = null;
    const reqs: Request[] = [];
    const ids = Array.from({ length: sp.n }, (_, i) => (sp.n === 1 ? requestId : `${requestId}/${i}`));
    const onAbort = () => ids.forEach((id) => this.abortOne(id));
    try {
      for (const [i, id] of ids.entries()) {
        this.listeners.set(id, { onUpdate: (u) => (queue.push(u), wake?.()), onError: (e) => ((failed ??= e), wake?.()) });
        // samples after the first wait for its prompt KV and share it
        reqs.push(this.core.addRequest(id, promptIds, sp, opts.priority ?? 0, i, i === 0 ? undefined : ids[0]));
      }
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.pump();
      const outs: CompletionOutput[] = reqs.map((_, index) => ({ index, text: "", delta: "", tokenIds: [], finishReason: null, stopReason: null, ...(sp.logprobs !== null ? { logprobs: [] } : {}) }));
      let open = reqs.length;
      while (open > 0) {
        if (queue.length === 0 && !failed) await new Promise<void>((r) => (wake = r));
        wake = null;
        if (failed) throw failed;
        for (const o of outs) o.delta = "";
        while (queue.length > 0) {
          const u = queue.shift()!;
          const o = outs[ids.indexOf(u.id)];
          o.delta += u.newText;
          o.text += u.newText;
          o.tokenIds.push(...u.newTokenIds);
          o.logprobs?.push(...u.newLogprobs);
          if (u.finished) {
            o.finishReason = u.finishReason;
            o.stopReason = u.request.stopReason;
            open--;
          }
        }
        yield this.output(requestId, prompt, promptIds, outs, reqs, open === 0);
      }
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      onAbort(); // a consumer that stops iterating early cancels the rest
      ids.forEach((id) => this.listeners.delete(id));
    }
  }

  /**
   * Beam search (see runtime/beam-search.ts for the exact semantics): the best `n`
   * of `beamWidth` beams (at most 10), scored on the raw model distribution. Each step
   * scores all live beams as one batch; their shared prefixes reuse cached KV blocks.
   */
  async beamSearch(prompt: Prompt, params: BeamSearchOptions): Promise<RequestOutput> {
    const promptIds = this.encode(prompt);
    const W = params.beamWidth;
    if (!Number.isInteger(W) || W < 1 || W > MAX_LOGPROBS / 2) throw new OptionError("beamWidth", `got ${W}; expected an integer in [1, ${MAX_LOGPROBS / 2}]`);
    const n = params.n ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > W) throw new OptionError("n", `got ${n}; expected an integer in [1, beamWidth = ${W}]`);
    const started = performance.now();
    const score = async (beams: number[][], topN: number) => {
      const outs = await this.generate(beams.map((b) => ({ promptTokenIds: [...promptIds, ...b] })), { temperature: 0, maxTokens: 1, logprobs: topN, ignoreEos: true });
      return outs.map((o) => o.outputs[0].logprobs![0].top!);
    };
    const hyps = await beamSearch(score, { ...params, n, eosIds: [...this.core.engine.config.eosTokenIds, ...this.tokenizer.eosIds] });
    const elapsed = (performance.now() - started) / 1000;
    return {
      requestId: `beam-${nextId++}`,
      prompt: typeof prompt === "string" ? prompt : null,
      promptTokenIds: promptIds,
      outputs: hyps.map((h, index) => {
        const text = this.tokenizer.decode([...promptIds, ...h.tokenIds]).slice(this.tokenizer.decode(promptIds).length);
        return { index, text, delta: text, tokenIds: h.tokenIds, cumulativeLogprob: h.cumLogprob, score: h.score, finishReason: h.finishedByEos ? "stop" : "length", stopReason: h.finishedByEos ? h.tokenIds.at(-1)! : null };
      }),
      finished: true,
      metrics: { queueTime: 0, timeToFirstToken: null, e2eLatency: elapsed },
    };
  }

  stats(): CoreStats {
    return this.core.stats();
  }

  /** Cancels everything in flight, refuses new work, and frees the engine (rank threads, worker pool, GPU memory). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.listeners.keys()]) this.abortOne(id);
    this.core.closeEngines();
  }

  /** Why the engine can no longer run (a rank of a sharded engine died), or null while it can. */
  get failure(): Error | null {
    return this.core.engine.failure();
  }

  private abortOne(id: string): void {
    const u = this.core.abort(id);
    if (u) this.listeners.get(id)?.onUpdate(u);
  }

  private output(requestId: string, prompt: Prompt, promptTokenIds: number[], outs: CompletionOutput[], reqs: Request[], finished: boolean): RequestOutput {
    const t = reqs[0].timings;
    const ends = reqs.map((r) => r.timings.finished ?? NaN);
    return {
      requestId,
      prompt: typeof prompt === "string" ? prompt : null,
      promptTokenIds,
      outputs: outs.map((o) => ({ ...o, tokenIds: [...o.tokenIds], logprobs: o.logprobs ? [...o.logprobs] : undefined })),
      promptLogprobs: reqs[0].params.promptLogprobs === null ? undefined : [null, ...reqs[0].promptLogprobs],
      finished,
      metrics: {
        queueTime: ((t.firstScheduled ?? t.arrival) - t.arrival) / 1000,
        timeToFirstToken: t.firstToken === undefined ? null : (t.firstToken - t.arrival) / 1000,
        e2eLatency: finished ? (Math.max(...ends) - t.arrival) / 1000 : null,
      },
    };
  }

  /** Runs engine steps while there is work, yielding to the event loop between steps. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    const tick = () => {
      try {
        for (const u of this.core.step()) this.listeners.get(u.id)?.onUpdate(u);
      } catch (e) {
        // a failing step must not strand callers: finish everything with the error logged
        console.error("llmrt: engine step failed:", e);
        const err = e instanceof Error ? e : new Error(String(e));
        for (const [id, l] of [...this.listeners]) (l.onError(err), this.abortOne(id));
      }
      if (this.core.hasWork) setImmediate(tick);
      else this.pumping = false;
    };
    setImmediate(tick);
  }
}

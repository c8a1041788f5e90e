/**
 * Messages between the HTTP thread (WorkerLLM) and the engine thread (worker.ts).
 * Plain objects only: they cross postMessage by structured clone. The engine thread
 * posts arrays of FromWorker (one array per engine step's worth of updates).
 */
import type { LLMOptions, Prompt } from "../api/llm.js";
import type { RequestMetrics } from "../api/outputs.js";
import { LlmrtError } from "../errors.js";
import type { CoreStats } from "../runtime/engine-core.js";
import type { FinishReason } from "../runtime/request.js";
import type { SamplingParamsInput } from "../runtime/sampling-params.js";
import type { ToolCallFormat } from "../tools/index.js";
import type { TargetChoice } from "../engine/targets.js";

/** What the worker needs to load the model (LLMOptions without callbacks). */
export interface WorkerInit {
  model: string;
  options: Omit<LLMOptions, "onProgress">;
  /** Overrides the tool-call format the chat template implies (vLLM's --tool-call-parser). */
  toolCallParser?: string;
}

/** Facts about the loaded model, sent once when it is ready. */
export interface ModelInfo {
  model: string;
  randomWeights: boolean;
  /** Longest prompt + output one sequence may reach. */
  maxSeqLen: number;
  vocabSize: number;
  hasChatTemplate: boolean;
  /** How the model writes tool calls (--tool-call-parser, else the template's markers); null when unknown. */
  toolCallFormat: ToolCallFormat | null;
  kvBlocksTotal: number;
  blockSize: number;
  /** The backend the engine runs on (why --target auto chose it; its threads on cpu). */
  target: TargetChoice;
}

/** A logprob entry with the token's text and UTF-8 bytes, as the OpenAI shapes want. */
export interface TextTopLogprob {
  token: number;
  logprob: number;
  text: string;
  bytes: number[];
}
export interface TextLogprob extends TextTopLogprob {
  top?: TextTopLogprob[];
}

/** A prompt token's logprob; null for the first token, which nothing predicts. */
export interface PromptTokenLogprob {
  token: number;
  text: string;
  bytes: number[];
  logprob: number | null;
  top?: TextTopLogprob[];
}

/** What one output index gained since the previous message. */
export interface OutputDelta {
  index: number;
  delta: string;
  tokenIds: number[];
  logprobs?: TextLogprob[];
  finishReason: FinishReason | null;
  stopReason: string | number | null;
}

export type Call =
  | { method: "stats"; args: [] }
  | { method: "encode"; args: [text: string, addSpecial: boolean] }
  | { method: "decode"; args: [ids: number[]] }
  | { method: "renderChat"; args: [messages: unknown[], opts: ChatRenderOptions] };

export interface ChatRenderOptions {
  addGenerationPrompt?: boolean;
  /** Extra template variables (vLLM's chat_template_kwargs). */
  extra?: Record<string, unknown>;
  /** Tool definitions, passed to the template as `tools`. */
  tools?: unknown[];
}

export interface ChatRender {
  prompt: string;
  promptTokenIds: number[];
}

export type ToWorker =
  | { type: "generate"; id: number; prompt: Prompt; params: SamplingParamsInput; priority: number }
  | { type: "abort"; id: number }
  | ({ type: "call"; callId: number } & Call)
  | { type: "close" };

export type FromWorker =
  | { type: "progress"; file: string; downloaded: number; total: number }
  | { type: "ready"; info: ModelInfo }
  | { type: "load-error"; error: WireError }
  | {
      type: "output";
      id: number;
      /** Sent with the first output only. */
      promptTokenIds?: number[];
      /** Sent with the first output only, when requested (the prompt is computed by then). */
      promptLogprobs?: PromptTokenLogprob[];
      outputs: OutputDelta[];
      finished: boolean;
      metrics: RequestMetrics;
    }
  | { type: "gen-error"; id: number; error: WireError }
  /** The engine can no longer run (a rank of a sharded engine died); the thread stays up to answer. */
  | { type: "engine-failed"; error: WireError }
  | { type: "result"; callId: number; value?: unknown; error?: WireError }
  | { type: "closed" };

export type StatsResult = CoreStats;

/** An error flattened for postMessage; LlmrtError's code and option survive the trip. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  option?: string;
}

export function toWire(e: unknown): WireError {
  if (e instanceof Error) {
    const w: WireError = { name: e.name, message: e.message };
    if (e instanceof LlmrtError) w.code = e.code;
    const option = (e as { option?: unknown }).option;
    if (typeof option === "string") w.option = option;
    return w;
  }
  return { name: "Error", message: String(e) };
}

/** An error that came from the engine thread: keeps the code (e.g. "option", "chat_template") for the HTTP layer. */
export class WorkerError extends LlmrtError {
  readonly option?: string;
  constructor(w: WireError) {
    super(w.code ?? "internal", w.message);
    this.name = w.name;
    this.option = w.option;
  }
}

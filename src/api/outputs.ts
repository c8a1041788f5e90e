/** What the LLM API returns: the shape of TensorRT-LLM's / vLLM's RequestOutput, in TS idiom. */
import type { FinishReason, TokenLogprob } from "../runtime/request.js";

export interface CompletionOutput {
  /** Which of the n samples this is. */
  index: number;
  /** Cumulative generated text (stop strings excluded). */
  text: string;
  /** Text added since the previous streamed output (equals `text` for non-streamed results). */
  delta: string;
  /** Cumulative generated token ids. */
  tokenIds: number[];
  /** Per generated token: its logprob and the top alternatives (when requested). */
  logprobs?: TokenLogprob[];
  finishReason: FinishReason | null;
  /** The stop string or token id that ended it, if one did. */
  stopReason: string | number | null;
  /** Beam search: the hypothesis' summed logprob and its length-penalized score. */
  cumulativeLogprob?: number;
  score?: number;
}

export interface RequestMetrics {
  /** Seconds from arrival to first scheduled step. */
  queueTime: number;
  /** Seconds from arrival to first token. */
  timeToFirstToken: number | null;
  /** Seconds from arrival to finish. */
  e2eLatency: number | null;
}

export interface RequestOutput {
  requestId: string;
  prompt: string | null;
  /** The exact ids fed to the model (BOS included when added). */
  promptTokenIds: number[];
  outputs: CompletionOutput[];
  /** When requested: per prompt token, its logprob given the tokens before it (null for the first). */
  promptLogprobs?: (TokenLogprob | null)[];
  finished: boolean;
  metrics: RequestMetrics;
}

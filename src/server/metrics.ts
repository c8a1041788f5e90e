/**
 * Prometheus metrics under vLLM's names and `model_name` label, so dashboards and
 * routers built for vLLM read llmrt unchanged. Engine-side numbers (queue, KV usage,
 * preemptions, prefix cache) are read from stats() at scrape time; request numbers
 * are recorded by the routes as tokens stream out.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CoreStats } from "../runtime/engine-core.js";

const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

/**
 * Verification steps (vLLM's "drafts"), which stats() gives only through the mean
 * accepted length: mean = (accepted + steps) / steps, so steps = accepted / (mean - 1).
 * Exact once any draft token was accepted; before that it cannot be known (null),
 * and the counter waits rather than guess.
 */
export function verificationSteps(s: Partial<CoreStats>): number | null {
  if (s.specVerifications !== undefined) return s.specVerifications; // counted by the engine
  const accepted = s.specAcceptedTokens ?? 0;
  const mean = s.specMeanAcceptedLength ?? 0;
  if (accepted <= 0 || mean <= 1) return null;
  return Math.round(accepted / (mean - 1));
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly labels: { model_name: string };
  private readonly running: Gauge;
  private readonly waiting: Gauge;
  private readonly kvUsage: Gauge;
  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly preemptions: Counter;
  private readonly prefixQueries: Counter;
  private readonly prefixHits: Counter;
  private readonly success: Counter;
  private readonly ttft: Histogram;
  private readonly itl: Histogram;
  private readonly e2e: Histogram;
  private readonly queue: Histogram;
  private readonly specDrafts: Counter;
  private readonly specDraftTokens: Counter;
  private readonly specAccepted: Counter;
  private readonly specRate: Gauge;
  private readonly specMeanLen: Gauge;
  /** Last absolute values read from stats(), to turn them into counter increments. */
  private seen = { preemptions: 0, queries: 0, hits: 0, drafts: 0, draftTokens: 0, accepted: 0 };

  constructor(modelName: string) {
    this.labels = { model_name: modelName };
    const registers = [this.registry];
    const labelNames = ["model_name"];
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string, extra: string[] = []) => new Counter({ name, help, labelNames: [...labelNames, ...extra], registers });
    const histogram = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers });

    this.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.");
    this.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.");
    this.kvUsage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.");
    this.promptTokens = counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.");
    this.generationTokens = counter("vllm:generation_tokens_total", "Number of generation tokens processed.");
    this.preemptions = counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.");
    this.prefixQueries = counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.");
    this.prefixHits = counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.");
    this.success = counter("vllm:request_success_total", "Count of successfully processed requests.", ["finished_reason"]);
    this.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS);
    this.itl = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS);
    this.e2e = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", LATENCY_BUCKETS);
    this.queue = histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", LATENCY_BUCKETS);
    this.specDrafts = counter("vllm:spec_decode_num_drafts_total", "Number of spec decoding drafts (verification steps of one sequence).");
    this.specDraftTokens = counter("vllm:spec_decode_num_draft_tokens_total", "Number of draft tokens.");
    this.specAccepted = counter("vllm:spec_decode_num_accepted_tokens_total", "Number of accepted tokens.");
    this.specRate = gauge("llmrt:spec_decode_acceptance_rate", "Accepted draft tokens over proposed draft tokens, since start.");
    this.specMeanLen = gauge("llmrt:spec_decode_mean_accepted_length", "Tokens emitted per verification step (accepted drafts + 1), since start.");
    // Start every series at 0 so a scrape before the first request already lists them.
    for (const c of [this.promptTokens, this.generationTokens, this.preemptions, this.prefixQueries, this.prefixHits, this.specDrafts, this.specDraftTokens, this.specAccepted]) c.inc(this.labels, 0);
    for (const g of [this.specRate, this.specMeanLen]) g.set(this.labels, 0);
  }

  /** Updates the engine-side series from a stats() snapshot (missing fields count as 0). */
  setEngineStats(s: Partial<CoreStats>): void {
    this.running.set(this.labels, s.running ?? 0);
    this.waiting.set(this.labels, s.waiting ?? 0);
    this.kvUsage.set(this.labels, s.kvUsage ?? 0);
    this.seen.preemptions = this.advance(this.preemptions, this.seen.preemptions, s.numPreemptions ?? 0);
    this.seen.queries = this.advance(this.prefixQueries, this.seen.queries, s.prefixQueries ?? 0);
    this.seen.hits = this.advance(this.prefixHits, this.seen.hits, s.prefixHits ?? 0);
    this.seen.draftTokens = this.advance(this.specDraftTokens, this.seen.draftTokens, s.specDraftTokens ?? 0);
    this.seen.accepted = this.advance(this.specAccepted, this.seen.accepted, s.specAcceptedTokens ?? 0);
    const drafts = verificationSteps(s);
    if (drafts !== null) this.seen.drafts = this.advance(this.specDrafts, this.seen.drafts, drafts);
    this.specRate.set(this.labels, s.specAcceptanceRate ?? 0);
    this.specMeanLen.set(this.labels, s.specMeanAcceptedLength ?? 0);
  }

  private advance(c: Counter, last: number, now: number): number {
    if (now > last) c.inc(this.labels, now - last);
    return Math.max(now, last);
  }

  promptProcessed(tokens: number): void {
    this.promptTokens.inc(this.labels, tokens);
  }

  /** `tokens` new tokens of one request arrived; `gapSeconds` since its previous ones (null for its first). */
  tokensGenerated(tokens: number, gapSeconds: number | null): void {
    this.generationTokens.inc(this.labels, tokens);
    if (gapSeconds !== null) this.itl.observe(this.labels, gapSeconds);
  }

  requestFinished(m: { queueTime: number; timeToFirstToken: number | null; e2eLatency: number | null }, finishReason: string): void {
    this.queue.observe(this.labels, m.queueTime);
    if (m.timeToFirstToken !== null) this.ttft.observe(this.labels, m.timeToFirstToken);
    if (m.e2eLatency !== null) this.e2e.observe(this.labels, m.e2eLatency);
    if (finishReason !== "abort") this.success.inc({ ...this.labels, finished_reason: finishReason });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * GPU speed: HBM bandwidth measured with device-to-device copies, then per model shape
 * (random weights generated on the device) decode at batch 1 and in-flight batching
 * throughput at 1 / 8 / 64 concurrent requests through the runtime, with TTFT and TPOT
 * as trtllm-bench reports them, and the share of measured bandwidth decode reaches.
 */
import type { CudaBound } from "../../src/backends/cuda/bound.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import type { Cubins } from "../../src/backends/cuda/compile.js";
import type { CudaDriver } from "../../src/backends/cuda/driver.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { measureLatency, measureThroughput, median } from "../../src/cli/bench.js";
import { planEngine } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { materializeWeight } from "../../src/engine/weights.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";

/** Bytes read plus written per second by large device-to-device copies (GB/s). */
export function measureHbm(d: CudaDriver, bytes = 1 << 30, reps = 20): number {
  const a = d.alloc(bytes),
    b = d.alloc(bytes);
  const s = d.createStream();
  const [e0, e1] = [d.createEvent(), d.createEvent()];
  try {
    d.memset8(a, 1, bytes);
    for (let i = 0; i < 3; i++) d.dtodAsync(b, a, bytes, s);
    d.recordEvent(e0, s);
    for (let i = 0; i < reps; i++) d.dtodAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, s);
    d.recordEvent(e1, s);
    const ms = d.elapsedMs(e0, e1);
    return (2 * bytes * reps) / (ms / 1000) / 1e9;
  } finally {
    d.free(a), d.free(b), d.destroyEvent(e0), d.destroyEvent(e1), d.destroyStream(s);
  }
}

export interface DummyEngine {
  engine: Engine;
  bound: CudaBound;
  /** Bytes a decode step reads from weights (every linear weight, vectors, one embedding row). */
  decodeBytes: number;
}

/** An engine of `config` on the GPU with random weights made there: nothing is read from disk. */
export function dummyEngine(config: ModelConfig, maxSeqs: number, maxSeqLen: number, maxBatchTokens: number, o: CudaBackendOptions & { cubins?: Cubins }): DummyEngine {
  const options = resolveBuildOptions(config, { dtype: "bf16", maxBatchTokens, maxSeqs, maxSeqLen, maxLogitRows: maxSeqs });
  const plan = planEngine(config, options);
  // only folded constants (RoPE frequencies) come from the host; the rest is random on the device
  const host = new Map<string, Float32Array>();
  for (const [name, d] of plan.graph.tensors) if (d.kind === "weight" && d.source?.kind === "fold") host.set(name, materializeWeight(plan.graph, name, { readF32: () => new Float32Array(0) }));
  const blockSize = 16;
  const kv = { numLayers: config.numLayers, numBlocks: maxSeqs * Math.ceil(maxSeqLen / blockSize), blockSize, numKvHeads: config.numKvHeads, headDim: config.headDim };
  const backend = new CudaBackend({ loadFormat: "dummy", dtype: "bf16", kvDtype: "bf16", ...o });
  const bound = backend.bind(plan.graph, host, kv, plan.memory);
  const engine = new Engine(config, plan.graph, bound, maxSeqLen, { maxBatchTokens, maxLogitRows: maxSeqs, maxSeqs, origin: "dummy" }, plan.report);
  const matmulW = new Set(plan.graph.ops.flatMap((op) => (op.op === "matmul" ? [op.w] : [])));
  let decodeBytes = 0;
  for (const w of bound.deviceWeights.all()) decodeBytes += w.role === "table" && !matmulW.has(w.name) ? w.bytes / w.rows : w.bytes;
  return { engine, bound, decodeBytes };
}

export interface DecodeResult {
  prefill_tok_s: number;
  decode_tok_s: number;
  ms_per_token: number;
  /** Decode with the device picking the token (R ints cross to the host instead of R x vocab floats). */
  decode_device_greedy_tok_s: number;
  weight_gb_per_token: number;
  /** Weight bytes per token x tokens per second over the measured HBM bandwidth. */
  hbm_share: number;
}

/** Decode at batch 1: P-token prefill then G one-token steps, medians of `runs`. */
export function measureDecode(e: DummyEngine, P: number, G: number, runs: number, hbmGbps: number): DecodeResult {
  const t = measureLatency(e.engine, P, G, runs);
  const tps = G / median(t.decode);
  // the same loop with greedy on the device
  const seq = new Sequence(0, Array.from({ length: P + G }, (_, i) => (i * 7919) % e.engine.config.vocabSize));
  new BlockPool(e.engine.kv.numBlocks, e.engine.kv.blockSize, false).reserve(seq, P + G);
  const step = (n: number) => e.bound.forwardTopK(buildStep([{ seq, numNew: n, wantLogits: true }], e.engine.kv.blockSize), 1);
  step(P);
  seq.numComputed = P;
  const t0 = performance.now();
  for (let i = 0; i < G; i++) (step(1), seq.numComputed++);
  const greedyTps = G / ((performance.now() - t0) / 1000);
  const gb = e.decodeBytes / 1e9;
  return {
    prefill_tok_s: P / median(t.prefill),
    decode_tok_s: tps,
    ms_per_token: (1000 * median(t.decode)) / G,
    decode_device_greedy_tok_s: greedyTps,
    weight_gb_per_token: gb,
    hbm_share: (gb * Math.max(tps, greedyTps)) / hbmGbps,
  };
}

export interface ThroughputResult {
  concurrency: number;
  requests: number;
  output_tok_s: number;
  ttft_p50_ms: number;
  tpot_p50_ms: number;
  wall_s: number;
}

/** C requests of `input` random tokens generating `output` each, all admitted at once (one wave, as a generate() batch). */
export function measureConcurrency(e: DummyEngine, C: number, input: number, output: number, maxBatchTokens: number): ThroughputResult {
  e.bound.warmDecodeGraphs(C);
  const reqs = Array.from({ length: C }, () => ({ input, output }));
  const { wallS, recs } = measureThroughput(e.engine, reqs, C, maxBatchTokens);
  const tokens = recs.reduce((n, r) => n + r.tokens, 0);
  return {
    concurrency: C,
    requests: C,
    output_tok_s: tokens / wallS,
    ttft_p50_ms: median(recs.map((r) => r.first - r.added)),
    tpot_p50_ms: median(recs.filter((r) => r.tokens > 1).map((r) => (r.last - r.first) / (r.tokens - 1))),
    wall_s: wallS,
  };
}

/**
 * llmrt bench: engine benchmarks shaped after llama-bench and trtllm-bench.
 *
 *   llmrt bench latency --model M [--prompt-tokens 512] [--gen-tokens 128] [--threads T] [--json]
 *     one sequence: prefill tok/s, decode tok/s, ms/token, effective GB/s (weight bytes
 *     read per token x tok/s), peak RSS. Medians over --runs.
 *   llmrt bench throughput --model M --requests N --input-len A[,stdev] --output-len B[,stdev] [--concurrency C]
 *     the in-flight batching runtime on random-token requests: output tok/s, request/s,
 *     TTFT / TPOT / ITL p50, p90, p99.
 *
 * --model also takes synthetic:NAME (tiny, llama-110m, tinyllama-1.1b) or synthetic:{JSON
 * shape}: random weights, nothing to download; with --model-format gguf|safetensors|llama2c
 * [--model-dtype T] they are written once to a cached file that is then read like any
 * checkpoint (bench-model.ts). --kv-dtype sets the KV cache storage. With --json the last
 * stdout line is one JSON object.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Option, type Command } from "commander";
import { KV_DTYPES, type Backend, type KvDType } from "../backends/backend.js";
import { CpuBackend, resolveThreads, type CpuBound } from "../backends/cpu/backend.js";
import type { Checkpoint, TensorDType } from "../checkpoint/types.js";
import { buildEngineDir } from "../engine/build.js";
import { ggmlPackedDType } from "../quant/ggml.js";
import { Engine } from "../engine/engine.js";
import type { EngineDType } from "../engine/options.js";
import { targetByName } from "../engine/targets.js";
import { storageDType } from "../engine/weights.js";
import { SYNTHETIC_DTYPES, SYNTHETIC_FORMATS, type SyntheticFormat } from "../models/synthetic-files.js";
import { EngineCore } from "../runtime/engine-core.js";
import { normalizeSamplingParams } from "../runtime/sampling-params.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { dummyEngine } from "./bench-dummy.js";
import { openBenchCheckpoint } from "./bench-model.js";
import { latencyCharts, commandLine, requestCharts, writeReport } from "./bench-report.js";
import { registerBenchServe } from "./bench-serve.js";
import { bar, lengths, printResult, r2, rng, stats } from "./bench-stats.js";
import { intOption } from "./options.js";
import { measureLatency, median } from "../eval/latency.js";

export { measureLatency, median, type LatencyTimes } from "../eval/latency.js";

interface CommonFlags {
  model: string;
  target: string;
  loadFormat: "auto" | "dummy";
  threads?: number;
  dtype: EngineDType;
  modelFormat?: SyntheticFormat;
  modelDtype?: TensorDType;
  kvDtype: KvDType;
  json?: boolean;
  report?: string;
}

/** A checkpoint or in-memory synthetic model, as the CPU target in fp32 would take it (bench/compare-llamacpp.ts). */
export async function openBenchModel(spec: string): Promise<Checkpoint> {
  return (await openBenchCheckpoint({ model: spec, target: "none", dtype: "fp32" }, { maxSeqs: 1, maxSeqLen: 1, blockSize: 16 })).ckpt;
}

/** Whether a build keeps some of the checkpoint's weights packed (GGUF Q8_0 / Q4_0 / K-quant blocks, AWQ / GPTQ): an in-memory build would widen them. */
function keepsPacked(ckpt: Checkpoint): boolean {
  return ckpt.quantMethod !== undefined || ckpt.tensors().some((t) => ggmlPackedDType(t.dtype) !== undefined);
}

/**
 * The engine to bench: built in memory, or, for a checkpoint with packed weights, built into
 * a temporary engine dir and loaded, as `generate` / `serve` run it (their cached engine), so
 * the packed kernels are what is measured.
 */
function benchBuild(ckpt: Checkpoint, f: CommonFlags, sizes: { dtype: EngineDType; maxSeqLen: number; maxSeqs: number; maxBatchTokens: number; maxLogitRows: number; blockSize: number }, backend: () => Backend): Engine {
  if (!keepsPacked(ckpt)) return Engine.fromCheckpoint(ckpt, { backend: backend(), ...sizes, kvDtype: f.kvDtype });
  const dir = mkdtempSync(join(tmpdir(), "llmrt-bench-engine-"));
  try {
    const { blockSize, ...build } = sizes;
    buildEngineDir(ckpt, dir, { ...build, target: f.target });
    return Engine.load(dir, { backend: backend(), blockSize, kvDtype: f.kvDtype });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens the model and builds the engine, timing both (seconds; writing a synthetic file excluded): what a user's file costs to load. */
async function benchEngine(f: CommonFlags, sizes: { dtype: EngineDType; maxSeqLen: number; maxSeqs: number; maxBatchTokens: number; maxLogitRows: number; blockSize: number }, backend: () => Backend) {
  const t0 = performance.now();
  const { ckpt, file, writeS = 0 } = await openBenchCheckpoint(f, sizes);
  try {
    const engine = f.loadFormat === "dummy" ? dummyEngine(ckpt.config, { target: f.target, ...sizes }) : benchBuild(ckpt, f, sizes, backend);
    const fields = { ...(file ? { model_file: file } : {}), kv_dtype: engine.kv.dtype ?? "f32", kv_bytes: engine.kvBytes, load_s: r2((performance.now() - t0) / 1000 - writeS) };
    return { engine, fields };
  } finally {
    ckpt.close();
  }
}

/** The backend to bench; `onBound` sees the CPU backend's bound graph (for its op profile). */
function backendFor(f: CommonFlags & { profile?: boolean }, onBound: (b: CpuBound) => void = () => {}): Backend {
  if (f.target !== "cpu") return targetByName(f.target).createBackend();
  const cpu = new CpuBackend({ threads: f.threads, profile: f.profile });
  return { name: cpu.name, packedDTypes: cpu.packedDTypes, halfDTypes: cpu.halfDTypes, bind: (...args: Parameters<CpuBackend["bind"]>) => { const b = cpu.bind(...args); onBound(b); return b; } };
}

/** Bytes of weights one decode step reads: every matrix a matmul reads, plus one embedding row and the vectors. `stored`: a weight's dtype as the backend packed it, when known. */
export function weightBytesPerToken(engine: Engine, dtype: EngineDType, stored: (name: string) => string | undefined = () => undefined): number {
  const g = engine.graph;
  const matmulWeights = new Set(g.ops.flatMap((o) => (o.op === "matmul" ? [o.w] : [])));
  let bytes = 0;
  for (const [name, d] of g.tensors) {
    if (d.kind !== "weight") continue;
    const per = (stored(name) ?? storageDType(d.shape, dtype)) === "f32" ? 4 : 2;
    const n = d.shape.reduce((a, b) => a * b, 1);
    bytes += per * (d.shape.length < 2 || matmulWeights.has(name) ? n : d.shape[d.shape.length - 1]);
  }
  return bytes;
}


/**
 * Weight bytes a decode step reads from a CPU engine with packed weights: every weight as the
 * backend placed it (packed ones with their scales), less all but one row of the embedding table.
 */
export function packedWeightBytesPerToken(engine: Engine, bound: CpuBound): number {
  const emb = engine.graph.ops.find((o) => o.op === "embedding");
  const table = emb && "table" in emb ? (emb.table as string) : "";
  const d = engine.graph.tensors.get(table);
  const [rows, cols] = d?.kind === "weight" ? d.shape : [1, 0];
  const stored = bound.packedDType(table);
  const perValue = stored === "f32" ? 4 : stored === "bf16" || stored === "f16" ? 2 : stored === "int8" ? 1 : 0.5; // packed tables: their values' share, scales aside
  return bound.weightBytes - (rows - 1) * cols * perValue;
}

/** Whether the CPU engine holds any weight packed (int8 / int4 / K-quants). */
function hasPackedWeights(engine: Engine, bound: CpuBound): boolean {
  return [...engine.graph.tensors].some(([n, d]) => d.kind === "weight" && !["f32", "bf16", "f16", undefined].includes(bound.packedDType(n)));
}

interface LatencyFlags extends CommonFlags {
  profile?: boolean;
  promptTokens: number;
  genTokens: number;
  runs: number;
}

async function runLatency(f: LatencyFlags): Promise<void> {
  const P = f.promptTokens;
  const G = f.genTokens;
  let bound: CpuBound | undefined;
  const sizes = { dtype: f.dtype, maxSeqLen: P + G + 1, maxSeqs: 1, maxBatchTokens: Math.max(P, 1), maxLogitRows: 1, blockSize: 16 };
  const { engine, fields } = await benchEngine(f, sizes, () => backendFor(f, (b) => (bound = b)));
  const progress = bar("bench latency", f.runs * G, !!f.json);
  const { prefill, decode } = measureLatency(engine, P, G, f.runs, (d) => progress.update(d));
  progress.stop();
  const bytes = bound && hasPackedWeights(engine, bound) ? packedWeightBytesPerToken(engine, bound) : weightBytesPerToken(engine, f.dtype, (n) => bound?.packedDType(n));
  const decodeTps = G / median(decode);
  const result = {
    model: f.model,
    target: f.target,
    dtype: f.dtype,
    threads: f.target === "cpu" ? resolveThreads(f.threads) : 1,
    prompt_tokens: P,
    gen_tokens: G,
    prefill_tok_per_s: r2(P / median(prefill)),
    decode_tok_per_s: r2(decodeTps),
    ms_per_token: r2((1000 * median(decode)) / G),
    weight_bytes_per_token: bytes,
    effective_gb_per_s: r2((bytes * decodeTps) / 1e9),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    ...fields,
    runs: f.runs,
    ...(bound && f.profile ? { op_ms: opShares(bound) } : {}),
  };
  if (f.report) writeReport(f.report, { title: "llmrt bench latency", command: commandLine(), summary: result, charts: latencyCharts(prefill, decode) });
  printResult(result, f.json);
}

/** Milliseconds per op kind over all timed and warm-up steps, largest first. */
function opShares(b: CpuBound): Record<string, number> {
  return Object.fromEntries([...b.opTimes].sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, r2(v)]));
}

/** A tokenizer that prints nothing: benchmark requests are random token ids. */
function silentTokenizer(vocabSize: number): Tokenizer {
  return { vocabSize, bosId: null, eosIds: [], addBos: false, chatTemplate: null, encode: () => [], decode: () => "", idToPiece: () => "", isSpecial: () => false };
}

interface ThroughputFlags extends CommonFlags {
  profile?: boolean;
  requests: number;
  inputLen: string;
  outputLen: string;
  concurrency: number;
  maxBatchTokens: number;
}

export interface RequestRecord {
  added: number;
  first: number;
  last: number;
  tokens: number;
  itl: number[];
  done: number;
}

/** Runs every request through the in-flight batching runtime, at most C at once; per-request timings (ms). */
export function measureThroughput(engine: Engine, reqs: { input: number; output: number }[], C: number, maxBatchTokens: number, onDone: (n: number) => void = () => {}): { wallS: number; recs: RequestRecord[] } {
  const draw = rng(11);
  const vocab = engine.config.vocabSize;
  const core = new EngineCore(engine, silentTokenizer(vocab), { maxSeqs: C, maxBatchTokens, enablePrefixCaching: false });
  const recs: RequestRecord[] = reqs.map(() => ({ added: 0, first: NaN, last: NaN, tokens: 0, itl: [], done: NaN }));
  // warm-up request, not timed: first-call JIT and page faults
  core.addRequest("warmup", [1, 2, 3, 4], normalizeSamplingParams({ temperature: 0, maxTokens: 2, ignoreEos: true }));
  while (core.hasWork) core.step();
  let next = 0;
  let done = 0;
  let active = 0;
  const t0 = performance.now();
  while (done < reqs.length) {
    while (active < C && next < reqs.length) {
      const r = reqs[next];
      core.addRequest(String(next), Array.from({ length: r.input }, () => draw(vocab)), normalizeSamplingParams({ temperature: 0, maxTokens: r.output, ignoreEos: true }));
      recs[next++].added = performance.now();
      active++;
    }
    const updates = core.step();
    const now = performance.now();
    for (const u of updates) {
      const rec = recs[Number(u.id)];
      if (u.newTokenIds.length > 0) {
        if (Number.isNaN(rec.first)) rec.first = now;
        else rec.itl.push(now - rec.last);
        rec.last = now;
        rec.tokens += u.newTokenIds.length;
      }
      if (u.finished) {
        rec.done = now;
        active--;
        onDone(++done);
      }
    }
  }
  return { wallS: (performance.now() - t0) / 1000, recs };
}

async function runThroughput(f: ThroughputFlags): Promise<void> {
  const draw = rng(7);
  const inLen = lengths(f.inputLen, "--input-len", draw);
  const outLen = lengths(f.outputLen, "--output-len", draw);
  const reqs = Array.from({ length: f.requests }, () => ({ input: inLen(), output: outLen() }));
  const maxSeqLen = Math.max(...reqs.map((r) => r.input + r.output)) + 1;
  const C = f.concurrency;
  const sizes = { dtype: f.dtype, maxSeqLen, maxSeqs: C, maxBatchTokens: f.maxBatchTokens, maxLogitRows: C, blockSize: 16 };
  let bound: CpuBound | undefined;
  const { engine, fields } = await benchEngine(f, sizes, () => backendFor(f, (b) => (bound = b)));
  const progress = bar("bench throughput", f.requests, !!f.json);
  const { wallS: wall, recs } = measureThroughput(engine, reqs, C, f.maxBatchTokens, (n) => progress.update(n));
  progress.stop();
  const outTokens = recs.reduce((n, r) => n + r.tokens, 0);
  const summary = {
    model: f.model,
    target: f.target,
    dtype: f.dtype,
    threads: f.target === "cpu" ? resolveThreads(f.threads) : 1,
    requests: f.requests,
    concurrency: C,
    input_tokens: reqs.reduce((n, r) => n + r.input, 0),
    output_tokens: outTokens,
    duration_s: r2(wall),
    output_tok_per_s: r2(outTokens / wall),
    requests_per_s: r2(f.requests / wall),
    ttft_ms: stats(recs.map((r) => r.first - r.added)),
    tpot_ms: stats(recs.filter((r) => r.tokens > 1).map((r) => (r.done - r.first) / (r.tokens - 1))),
    itl_ms: stats(recs.flatMap((r) => r.itl)),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    ...fields,
    ...(bound && f.profile ? { op_ms: opShares(bound) } : {}),
  };
  if (f.report) writeReport(f.report, { title: "llmrt bench throughput", command: commandLine(), summary, charts: requestCharts(throughputTimings(recs, wall)) });
  printResult(summary, f.json);
}

/** Chart data of a throughput run: each step's tokens spread evenly over a request's token steps. */
function throughputTimings(recs: RequestRecord[], wallS: number) {
  const t0 = Math.min(...recs.map((r) => r.added));
  const tokens = recs.flatMap((r) => {
    let t = r.first;
    const times = [t, ...r.itl.map((d) => (t += d))];
    return times.map((x) => ({ t: (x - t0) / 1000, n: r.tokens / times.length }));
  });
  return { ttftMs: recs.map((r) => r.first - r.added), itlMs: recs.flatMap((r) => r.itl), tokens, wallS };
}

function common(c: Command): Command {
  return c
    .requiredOption("--model <spec>", "checkpoint path, Hub id, or synthetic:NAME / synthetic:{JSON shape} (random weights)")
    .option("--target <name>", "backend: cpu, reference or cuda", "cpu")
    .addOption(new Option("--load-format <how>", "dummy: random weights generated on the GPU (--target cuda), nothing read").choices(["auto", "dummy"]).default("auto"))
    .option("--threads <n>", "threads for --target cpu (default: all cores)", intOption("--threads", 1))
    .addOption(new Option("--dtype <type>", "weight storage").choices(["fp32", "fp16", "bf16"]).default("fp32"))
    .addOption(new Option("--model-format <format>", "write a synthetic: model once to a cached file in this format ($LLMRT_CACHE/synthetic, else ~/.cache/llmrt/synthetic) and bench that file").choices(SYNTHETIC_FORMATS))
    .addOption(new Option("--model-dtype <type>", "storage of that file's matrices (default: --dtype where the format holds it, else f32)").choices(SYNTHETIC_DTYPES))
    .addOption(new Option("--kv-dtype <type>", "KV cache storage (int8: a scale per head and slot; cpu and reference targets)").choices(KV_DTYPES).default("f32"))
    .option("--json", "print one JSON object as the last stdout line")
    .option("--report <file.html>", "also write a self-contained HTML report with charts");
}

export function registerBench(program: Command): void {
  const bench = program.command("bench").description("benchmark the engine: latency (one sequence), throughput (in-flight batching), or a running server (serve)");
  common(bench.command("latency").description("prefill and decode speed of one sequence"))
    .option("--prompt-tokens <n>", "prompt length", intOption("--prompt-tokens", 0), 512)
    .option("--gen-tokens <n>", "tokens to decode", intOption("--gen-tokens", 1), 128)
    .option("--runs <n>", "timed runs after one warm-up (medians are reported)", intOption("--runs", 1), 3)
    .option("--profile", "time each op kind separately (CPU target; one wake-up per op, so slower overall)")
    .action(async (f: LatencyFlags) => runLatency(f));
  common(bench.command("throughput").description("output tokens/s and TTFT/TPOT/ITL percentiles of many requests in flight"))
    .option("--requests <n>", "number of requests", intOption("--requests", 1), 32)
    .option("--input-len <len[,stdev]>", "prompt tokens per request", "128")
    .option("--output-len <len[,stdev]>", "output tokens per request", "128")
    .option("--concurrency <n>", "requests in flight at once", intOption("--concurrency", 1), 16)
    .option("--max-batch-tokens <n>", "tokens per engine step", intOption("--max-batch-tokens", 1), 512)
    .option("--profile", "time each op kind separately (CPU target; one wake-up per op, so slower overall)")
    .action(async (f: ThroughputFlags) => runThroughput(f));
  registerBenchServe(bench);
}

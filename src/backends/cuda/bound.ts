/**
 * A graph bound to one GPU: weights, activation arena, paged KV cache and step metadata
 * in device memory; forward() uploads the step (one copy), launches every op in order on
 * one stream (or replays the CUDA graph of the step's decode bucket, captured on first
 * use) and copies the outputs back.
 */
import type { BoundGraph, KvCacheShape, PackedWeightMap, WeightMap } from "../backend.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "../../checkpoint/fp16.js";
import { opInputs, type Graph, type Op } from "../../graph/ir.js";
import { rowsFor, type MemoryPlan } from "../../graph/passes/plan-memory.js";
import type { StepBatch } from "../../graph/step-batch.js";
import { ropeInvFreq } from "../reference/rope.js";
import { chooseSplits, decodeBlocksPerRow, decodeForm, launchAttention, MAX_SPLITS, prefillKernelFits, SPLIT_ROWS, type DecodeVariant } from "./attention.js";
import { graphBucket, padDecodeStep, planBuckets } from "./buckets.js";
import type { CublasLt } from "./cublaslt.js";
import { planDeviceMemory } from "./device-memory.js";
import type { CudaDriver, DevPtr, Ptr } from "./driver.js";
import { actBytes, cacheBytes } from "./dtypes.js";
import { chosenPath } from "./linear.js";
import { isCudaHostOp } from "./host-collectives.js";
import { launchOp, type OpContext } from "./ops.js";
import type { KernelModules } from "./modules.js";
import { layoutStep, maxTableLength, packStep, splitAttention, stepSizes, type StepLayout } from "./step-meta.js";
import { DeviceWeightStore, planWeights } from "./weight-store.js";
import { describeUploads, splitPacked, type PackedUpload } from "./packed-upload.js";
import { weightRoles } from "./weights.js";
import { PDL_AUTO_ROWS, type BoundSettings } from "./settings.js";
import { DeviceSelect } from "./select.js";
import { Tactics, timeTactics } from "./tactics.js";

/** Decode steps of at most this many rows use the attention form timed at 1 row; larger ones the one timed at 64. */
export const ATTN_SMALL_ROWS = 8;
/** The decode-attention forms the bind times and picks from (each where it exists for the engine's types and head size). */
export const AUTO_DECODE_FORMS: readonly DecodeVariant[] = ["direct", "staged", "tiled", "mma"];

export interface StepProfile {
  /** The decode bucket's CUDA graph replayed (null: the step runs launch by launch). */
  graphUs: number | null;
  /** Launch by launch. */
  stepUs: number;
  ops: { label: string; us: number }[];
  /** Launch by launch with an event after each kernel, summed by kernel name, largest first. */
  kernels: { kernel: string; us: number }[];
}

/** An op's kind, and for a matmul its path and shape, to group profiles by. */
function opLabel(op: Op, c: OpContext): string {
  if (op.op !== "matmul") return op.op;
  const w = c.weight(op.w);
  const x = c.graph.tensors.get(op.x)!;
  const M = x.kind === "activation" ? rowsFor(x.rows, { T: c.T, R: c.R }) : 1;
  return `matmul ${chosenPath(c, w, c.isF32(op.out), M)} ${w.rows}x${w.cols} ${w.fmt} M=${M}`;
}

export class CudaBound implements BoundGraph {
  readonly kv: KvCacheShape;
  readonly kvBytes: number;
  readonly memorySummary: string;
  /** Decode buckets whose CUDA graph has been captured, and how often each replayed. */
  readonly graphReplays = new Map<number, number>();
  private readonly weights: DeviceWeightStore;
  private readonly arena: DevPtr;
  private readonly kvBase: DevPtr;
  private readonly kvLayerBytes: number;
  private readonly meta: DevPtr;
  private readonly staging: { ptr: Ptr; ints: Int32Array };
  private readonly partO: DevPtr;
  private readonly partML: DevPtr;
  private readonly splitsDone: DevPtr;
  private readonly select: DeviceSelect;
  private readonly f32 = new Set<string>();
  private readonly graphs = new Map<number, Ptr>();
  private readonly buckets: number[];
  private readonly strideCap: number;
  private readonly graphStride: number;
  private readonly attnGeo: { numHeads: number; numKvHeads: number; headDim: number } | null;
  private readonly vocab: number;
  /** The graph has collectives or embedding_part: steps run launch by launch, never as a CUDA graph (host-collectives.ts). */
  readonly hostStaged: boolean;
  private fp8: { xq: DevPtr; amax: DevPtr; scale: DevPtr; bytes: number } | null = null;
  /** Each packed weight given to bind: the device format it kept, or why it was dequantized (packed-upload.ts). */
  readonly packedUploads: PackedUpload[];
  /** The decode matmul paths timed fastest at bind (empty when autotuning is off). */
  readonly tactics: Tactics;
  /** The decode-attention form timed fastest at bind for small (<= ATTN_SMALL_ROWS rows) and large steps (of AUTO_DECODE_FORMS); "direct" when not timed. */
  attnPick: { small: DecodeVariant; large: DecodeVariant; us: Record<string, number> } = { small: "direct", large: "direct", us: {} };

  constructor(
    private readonly driver: CudaDriver,
    private readonly k: KernelModules,
    private readonly lt: CublasLt | null,
    private readonly graph: Graph,
    hostFloat: WeightMap,
    kvAsked: KvCacheShape,
    private readonly plan: MemoryPlan,
    private readonly s: BoundSettings,
    packed: PackedWeightMap = new Map(),
  ) {
    const { T: capT, R: capR } = plan.capacity;
    const attn = graph.ops.find((o) => o.op === "attention" || o.op === "attention_qkv") as
      | { numHeads: number; numKvHeads: number; headDim: number }
      | undefined;
    this.attnGeo = attn ? { numHeads: attn.numHeads, numKvHeads: attn.numKvHeads, headDim: attn.headDim } : null;
    const emb = graph.ops.find((o) => o.op === "embedding");
    this.vocab = emb && emb.op === "embedding" ? (graph.tensors.get(emb.table) as { shape: number[] }).shape[0] : Infinity;
    this.markF32();
    this.hostStaged = graph.ops.some(isCudaHostOp);
    k.overlap = s.pdl === true && driver.canOverlapLaunches; // bind-time timings: overlapped only when always asked
    this.select = new DeviceSelect(driver, k);

    // packed weights: uploaded as they are where their layout is a device format, else widened here
    const split = splitPacked(packed, weightRoles(graph), s.act);
    this.packedUploads = split.uploads;
    if (split.uploads.length) s.log(describeUploads(split.uploads, `as ${s.policy.linear === "same" ? s.act : s.policy.linear}`));
    const host = split.widened.size ? new Map([...hostFloat, ...split.widened]) : hostFloat;

    // sizes first, then one plan for all of device memory
    const wplan = planWeights(graph, s.policy, split.keep);
    const kvDim = kvAsked.numKvHeads * kvAsked.headDim;
    const perBlock = 2 * kvAsked.numLayers * kvAsked.blockSize * kvDim * cacheBytes(s.cache);
    this.strideCap = Math.max(1, Math.min(kvAsked.numBlocks + 1, s.maxBlocksPerSeq));
    this.graphStride = Math.min(s.graphTableStride, this.strideCap);
    const metaLayout = layoutStep({ T: capT, S: capT, R: capR, stride: this.strideCap, decodeRows: capT, tiles: capT });
    const geo = this.attnGeo ?? { numHeads: 1, headDim: 1 };
    const partRows = SPLIT_ROWS * geo.numHeads * MAX_SPLITS; // split partials: O [.., D] and (max, sum) [.., 2]
    const partFloats = partRows * (geo.headDim + 2);
    const biggestUpload = Math.max(0, ...wplan.filter((w) => host.has(w.name)).map((w) => 4 * w.rows * w.cols));
    const mem = planDeviceMemory({
      freeBytes: driver.memInfo().free,
      weightBytes: wplan.reduce((n, w) => n + w.bytes, 0),
      arenaBytes: plan.arenaBytes,
      scratchBytes: 4 * metaLayout.ints + 4 * partFloats + biggestUpload + (lt ? lt.workspaceBytes : 0),
      kvBytesPerBlock: perBlock,
      requestedBlocks: kvAsked.numBlocks,
      kvBlocks: s.kvBlocks,
      utilization: s.utilization,
    });
    this.memorySummary = mem.summary;
    this.kv = { ...kvAsked, numBlocks: mem.numBlocks };
    this.kvBytes = mem.numBlocks * perBlock;
    this.kvLayerBytes = (mem.numBlocks + 1) * kvAsked.blockSize * kvDim * cacheBytes(s.cache);

    this.weights = new DeviceWeightStore(driver, k);
    this.weights.load(wplan, host, s.dummy, split.keep);
    for (const op of graph.ops) if (op.op === "rope_inv_freq") this.weights.addVector(op.out, Float32Array.from(ropeInvFreq(op.rope)));
    this.arena = driver.alloc(Math.max(plan.arenaBytes, 64));
    this.kvBase = driver.alloc(2 * kvAsked.numLayers * this.kvLayerBytes);
    driver.memset8(this.kvBase, 0, 2 * kvAsked.numLayers * this.kvLayerBytes); // slots never written read as zeros, not NaN bits
    this.meta = driver.alloc(4 * metaLayout.ints);
    const pinned = driver.allocHost(4 * metaLayout.ints);
    this.staging = { ptr: pinned.ptr, ints: new Int32Array(pinned.buffer) };
    this.partO = driver.alloc(4 * partRows * geo.headDim);
    this.partML = driver.alloc(4 * partRows * 2);
    const doneInts = SPLIT_ROWS * (this.attnGeo ? decodeBlocksPerRow(this.attnGeo) : 1);
    this.splitsDone = driver.alloc(4 * doneInts);
    driver.memset32(this.splitsDone, 0, doneInts); // the tiled kernel's last block leaves each count at zero again
    this.buckets = planBuckets({ maxBatch: Math.min(capT, capR), maxBucket: s.maxBucket });
    // the FP8 path's scratch exists before any CUDA graph is captured
    if (lt && wplan.some((w) => w.fmt === "fp8")) this.fp8Scratch(capT * this.maxLinearK());
    driver.syncStream(k.stream);
    const linears = graph.ops.flatMap((op) => (op.op === "matmul" ? [{ w: this.weights.get(op.w), outF32: this.f32.has(op.out) }] : []));
    this.tactics = s.autotune && s.linearMode === "auto" ? timeTactics({ driver, k, lt, act: s.act, smCount: driver.info.smCount, linears, maxRows: capT, reps: s.autotuneReps, flushL2: !s.emulated }) : new Tactics();
    // decode attention: timed where a form other than direct exists for these types and head size
    const attnD = this.attnGeo?.headDim;
    const choice = attnD !== undefined && AUTO_DECODE_FORMS.some((v) => v !== "direct" && decodeForm(v, s.act, s.cache, attnD) === v);
    if (s.autotune && s.decodeAttention === "auto" && choice) this.attnPick = this.timeDecodeAttention();
  }

  /**
   * Times the decode-attention forms on a synthetic decode step of one layer at 1 row and
   * at up to 64 rows (512 cached positions each) and keeps the faster of each.
   */
  private timeDecodeAttention(): CudaBound["attnPick"] {
    const pick: CudaBound["attnPick"] = { small: "direct", large: "direct", us: {} };
    for (const rows of [1, Math.min(64, this.plan.capacity.T, this.plan.capacity.R)]) {
      const times: [DecodeVariant, number][] = [];
      for (const v of AUTO_DECODE_FORMS) {
        const us = this.timeAttention(rows, 512, v);
        if (us === null) continue;
        pick.us[`${v}@${rows}`] = us;
        times.push([v, us]);
      }
      if (times.length === 0) continue;
      const best = times.reduce((a, b) => (b[1] < a[1] ? b : a))[0];
      if (rows === 1) pick.small = best;
      else pick.large = best;
    }
    return pick;
  }

  /** GPU microseconds of picking each of `rows` logits rows' `k` best on the device (the logits as they are), launch by launch; for the device check. */
  timeSelect(rows: number, k = 1, reps = 20): number {
    const output = this.graph.outputs[0];
    const V = (this.graph.tensors.get(output) as { cols: number }).cols;
    const logits = this.arena + this.plan.offsets[output];
    const ev = [this.driver.createEvent(), this.driver.createEvent()];
    try {
      this.select.launch(logits, rows, V, k);
      this.driver.recordEvent(ev[0], this.k.stream);
      for (let i = 0; i < reps; i++) this.select.launch(logits, rows, V, k);
      this.driver.recordEvent(ev[1], this.k.stream);
      this.driver.syncStream(this.k.stream);
      return (1000 * this.driver.elapsedMs(ev[0], ev[1])) / reps;
    } finally {
      for (const e of ev) this.driver.destroyEvent(e);
    }
  }

  /**
   * GPU microseconds of one layer's decode attention in `form` for `rows` rows of up to
   * `context` cached positions each over distinct blocks (fewer where the cache or the
   * block tables are smaller), as a CUDA graph of `reps` launches replays it, so the host's
   * launch cost is not counted. The cache's contents do not matter to the time. Null: no
   * attention op, no such form for these types and head size, or no room for one block a row.
   */
  timeAttention(rows: number, context: number, form: DecodeVariant, reps = this.s.autotuneReps): number | null {
    const op = this.graph.ops.find((o) => o.op === "attention" || o.op === "attention_qkv");
    if (!op || (op.op !== "attention" && op.op !== "attention_qkv")) return null;
    if (decodeForm(form, this.s.act, this.s.cache, op.headDim) !== form) return null;
    const bs = this.kv.blockSize;
    const perSeq = Math.min(Math.floor(this.kv.numBlocks / rows), Math.ceil(context / bs), this.graphStride);
    if (perSeq < 1 || rows > this.plan.capacity.T) return null;
    const len = perSeq * bs;
    const ints = (n: number, f: (i: number) => number) => Int32Array.from({ length: n }, (_, i) => f(i));
    const step: StepBatch = {
      numTokens: rows,
      tokenIds: new Int32Array(rows),
      positions: ints(rows, () => len - 1),
      seqStarts: ints(rows + 1, (i) => i),
      contextLens: ints(rows, () => len),
      blockTables: Array.from({ length: rows }, (_, r) => ints(perSeq, (b) => r * perSeq + b)),
      slotMapping: ints(rows, (r) => (r * perSeq + perSeq - 1) * bs + bs - 1),
      logitRows: ints(rows, (i) => i),
    };
    const d = this.driver;
    const stream = this.k.stream!;
    const { ctx } = this.prepare(step, false, form);
    const kv = ctx.kvPtrs(0);
    const run = () => launchAttention(ctx, op, ctx.at(op.q), ctx.at(op.out), kv.k, kv.v);
    run();
    d.beginCapture(stream);
    let exec: Ptr;
    try {
      for (let i = 0; i < reps; i++) run();
    } finally {
      exec = d.endCapture(stream);
    }
    const [e0, e1] = [d.createEvent(), d.createEvent()];
    try {
      d.launchGraph(exec, stream);
      d.recordEvent(e0, stream);
      d.launchGraph(exec, stream);
      d.recordEvent(e1, stream);
      d.syncStream(stream);
      return (1000 * d.elapsedMs(e0, e1)) / reps;
    } finally {
      d.destroyEvent(e0), d.destroyEvent(e1);
      d.destroyGraph(exec);
    }
  }

  /**
   * Float32 activations: RoPE frequencies, and matmul outputs the caller reads and no op
   * does (logits); in a vocabulary-parallel head, the all_gather's output and the matmul
   * part it gathers.
   */
  private markF32(): void {
    const readOnlyByCaller = (name: string) => this.graph.outputs.includes(name) && !this.graph.ops.some((o) => opInputs(o).includes(name));
    for (const op of this.graph.ops) {
      if (op.op === "rope_inv_freq") this.f32.add(op.out);
      if (op.op === "matmul" && readOnlyByCaller(op.out)) this.f32.add(op.out);
      if (op.op === "all_gather" && readOnlyByCaller(op.out)) {
        this.f32.add(op.out);
        const readers = this.graph.ops.filter((o) => opInputs(o).includes(op.x));
        if (readers.length === 1 && this.graph.ops.some((o) => o.op === "matmul" && o.out === op.x)) this.f32.add(op.x);
      }
    }
  }

  forward(step: StepBatch): Map<string, Float32Array> {
    this.run(step);
    return this.readOutputs(step.numTokens, step.logitRows.length);
  }

  /**
   * Runs the step and returns, per logit row, the ids (and logits) of its k largest logits
   * (k = 1: greedy), chosen on the device: R*k numbers cross to the host instead of R*vocab.
   */
  forwardTopK(step: StepBatch, k = 1, output = this.graph.outputs[0]): { ids: Int32Array; values: Float32Array } {
    if (!this.f32.has(output)) throw new RangeError(`cuda backend: top-k needs float32 logits; "${output}" is not`);
    this.run(step);
    const R = step.logitRows.length;
    const V = (this.graph.tensors.get(output) as { cols: number }).cols;
    const logits = this.arena + this.plan.offsets[output];
    const ids = new Int32Array(R * k);
    const values = new Float32Array(R * k);
    if (R === 0) return { ids, values };
    const out = this.select.launch(logits, R, V, k);
    this.driver.dtohAsync(ids, out.ids, 4 * R * k, this.k.stream);
    if (k > 1) this.driver.dtohAsync(values, out.values, 4 * R * k, this.k.stream);
    this.driver.syncStream(this.k.stream);
    return { ids, values };
  }

  /**
   * Captures the CUDA graph of every decode bucket up to `maxBatch` now (benchmarks warm
   * up with this), with pad-only steps that write the sink block. Returns the buckets.
   */
  warmDecodeGraphs(maxBatch: number): number[] {
    if (!this.s.graphs || this.hostStaged) return [];
    const out = this.buckets.filter((b) => b <= maxBatch);
    for (const b of out) {
      const one = Int32Array.of(0);
      const seed: StepBatch = { numTokens: 1, tokenIds: one, positions: one, seqStarts: Int32Array.of(0, 1), contextLens: Int32Array.of(1), blockTables: [Int32Array.of(this.kv.numBlocks)], slotMapping: Int32Array.of(this.kv.numBlocks * this.kv.blockSize), logitRows: one };
      this.run(padDecodeStep(seed, b, this.kv.numBlocks, this.kv.blockSize));
    }
    this.driver.syncStream(this.k.stream);
    return out;
  }

  /** The weights on the device (formats and bytes, for reports). */
  get deviceWeights(): DeviceWeightStore {
    return this.weights;
  }

  /** Uploads the step and launches (or replays) its kernels; outputs stay on the device. */
  private run(step: StepBatch): void {
    const { bucket, ctx } = this.prepare(step, this.s.graphs);
    if (bucket === null) {
      for (const op of this.graph.ops) launchOp(op, ctx);
      return;
    }
    this.driver.launchGraph(this.graphFor(bucket, ctx), this.k.stream);
    this.graphReplays.set(bucket, (this.graphReplays.get(bucket) ?? 0) + 1);
  }

  /** Checks the step, pads it to its decode bucket (when graphs may be used), uploads its metadata; returns the launch context. */
  private prepare(step: StepBatch, graphs: boolean, form?: DecodeVariant): { bucket: number | null; ctx: OpContext } {
    const { T: capT, R: capR } = this.plan.capacity;
    if (step.numTokens > capT || step.logitRows.length > capR) {
      throw new RangeError(`cuda backend: step of ${step.numTokens} tokens / ${step.logitRows.length} logit rows exceeds the planned ${capT} / ${capR}`);
    }
    for (const id of step.tokenIds) if (id < 0 || id >= this.vocab) throw new RangeError(`token id ${id} outside the vocabulary [0, ${this.vocab})`);

    // no CUDA graph across a host-staged collective (nor embedding_part, whose copies depend on the token ids)
    const bucket = graphs && !this.hostStaged ? graphBucket(step, this.buckets, this.graphStride) : null;
    this.k.overlap = this.driver.canOverlapLaunches && (this.s.pdl === true || (this.s.pdl === "auto" && bucket !== null && bucket <= PDL_AUTO_ROWS));
    const run = bucket === null ? step : padDecodeStep(step, bucket, this.kv.numBlocks, this.kv.blockSize);
    const prefillOk = !this.s.decodeOnly && this.attnGeo !== null && prefillKernelFits(this.s.act, this.attnGeo.headDim);
    const split = splitAttention(run, prefillOk);
    const stride = bucket === null ? maxTableLength(run) : this.graphStride;
    if (stride > this.strideCap) throw new RangeError(`cuda backend: a block table of ${stride} blocks exceeds the ${this.strideCap} this engine was bound for`);
    const layout = layoutStep(stepSizes(run, split, stride));
    packStep(run, split, layout, this.staging.ints);
    this.driver.htodAsync(this.meta, this.staging.ptr, 4 * layout.ints, this.k.stream);

    const maxCtx = bucket === null ? split.maxDecodeContext : this.graphStride * this.kv.blockSize;
    const rows = split.decodeRows.length;
    const geo = this.attnGeo;
    const variant = geo ? decodeForm(form ?? this.decodeVariant(rows), this.s.act, this.s.cache, geo.headDim) : "direct";
    const bpr = geo ? decodeBlocksPerRow(geo, variant) : 1;
    return { bucket, ctx: this.context(run, layout, chooseSplits(rows, bpr, maxCtx, this.driver.info.smCount, variant), variant) };
  }

  /** The CUDA graph of a decode bucket, captured from `ctx`'s launches on first use. */
  private graphFor(bucket: number, ctx: OpContext): Ptr {
    let exec = this.graphs.get(bucket);
    if (exec === undefined) {
      this.driver.beginCapture(this.k.stream!);
      try {
        for (const op of this.graph.ops) launchOp(op, ctx);
      } finally {
        exec = this.driver.endCapture(this.k.stream!);
      }
      this.graphs.set(bucket, exec);
    }
    return exec;
  }

  /**
   * GPU time of one step, for the device check: the CUDA-graph replay (decode buckets),
   * the same step launch by launch, and each op's share (events between ops, so small
   * kernels read a little long). Microseconds, means of `reps`.
   */
  profile(step: StepBatch, reps = 20): StepProfile {
    const d = this.driver;
    const ev = Array.from({ length: this.graph.ops.length + 1 }, () => d.createEvent());
    try {
      let graphUs: number | null = null;
      const g = this.prepare(step, this.s.graphs);
      if (g.bucket !== null) {
        const exec = this.graphFor(g.bucket, g.ctx);
        d.launchGraph(exec, this.k.stream);
        d.recordEvent(ev[0], this.k.stream);
        for (let i = 0; i < reps; i++) d.launchGraph(exec, this.k.stream);
        d.recordEvent(ev[1], this.k.stream);
        graphUs = (1000 * d.elapsedMs(ev[0], ev[1])) / reps;
      }
      const { ctx } = this.prepare(step, false);
      const n = this.graph.ops.length;
      const opUs = new Float64Array(n);
      let stepUs = 0;
      for (let r = 0; r < reps + 1; r++) {
        d.recordEvent(ev[0], this.k.stream);
        this.graph.ops.forEach((op, i) => (launchOp(op, ctx), d.recordEvent(ev[i + 1], this.k.stream)));
        d.syncStream(this.k.stream);
        if (r === 0) continue; // warm-up
        for (let i = 0; i < n; i++) opUs[i] += (1000 * d.elapsedMs(ev[i], ev[i + 1])) / reps;
        stepUs += (1000 * d.elapsedMs(ev[0], ev[n])) / reps;
      }
      return { graphUs, stepUs, ops: this.graph.ops.map((op, i) => ({ label: opLabel(op, ctx), us: opUs[i] })), kernels: this.profileKernels(ctx, reps) };
    } finally {
      for (const e of ev) d.destroyEvent(e);
    }
  }

  /** Per kernel (by name; cuBLASLt calls by shape): microseconds per step, an event after each launch. */
  private profileKernels(ctx: OpContext, reps: number): { kernel: string; us: number }[] {
    const d = this.driver;
    const pool: Ptr[] = [d.createEvent()];
    const names: string[] = [];
    const total = new Map<string, number>();
    try {
      for (let r = 0; r < reps + 1; r++) {
        let j = 0;
        names.length = 0;
        this.k.trace = (name) => {
          if (pool.length <= ++j) pool.push(d.createEvent());
          d.recordEvent(pool[j], this.k.stream);
          names.push(name);
        };
        d.recordEvent(pool[0], this.k.stream);
        for (const op of this.graph.ops) launchOp(op, ctx);
        this.k.trace = null;
        d.syncStream(this.k.stream);
        if (r === 0) continue;
        names.forEach((name, i) => total.set(name, (total.get(name) ?? 0) + (1000 * d.elapsedMs(pool[i], pool[i + 1])) / reps));
      }
    } finally {
      this.k.trace = null;
      for (const e of pool) d.destroyEvent(e);
    }
    return [...total].map(([kernel, us]) => ({ kernel, us })).sort((a, b) => b.us - a.us);
  }

  private readOutputs(T: number, R: number): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const name of this.graph.outputs) {
      const d = this.graph.tensors.get(name)!;
      if (d.kind !== "activation") continue;
      const n = rowsFor(d.rows, { T, R }) * d.cols;
      const src = this.arena + this.plan.offsets[name];
      if (this.f32.has(name) || this.s.act === "f32") {
        const f = new Float32Array(n);
        this.driver.dtohAsync(f, src, 4 * n, this.k.stream);
        out.set(name, f);
      } else {
        const h = new Uint16Array(n);
        this.driver.dtohAsync(h, src, 2 * n, this.k.stream);
        out.set(name, this.s.act === "bf16" ? bf16ArrayToF32(h) : f16ArrayToF32(h));
      }
    }
    this.driver.syncStream(this.k.stream);
    return out;
  }

  /** The decode-attention form for a step of `rows` decode rows: forced, or the bind-time pick for its size class. */
  private decodeVariant(rows: number): DecodeVariant {
    const s = this.s.decodeAttention;
    if (s !== "auto") return s;
    return rows <= ATTN_SMALL_ROWS ? this.attnPick.small : this.attnPick.large;
  }

  private context(step: StepBatch, layout: StepLayout, splits: number, decodeVariant: DecodeVariant = "direct"): OpContext {
    const s = this.s;
    const kvLayer = this.kvLayerBytes;
    return {
      graph: this.graph,
      k: this.k,
      act: s.act,
      cache: s.cache,
      smCount: this.driver.info.smCount,
      lt: this.lt,
      mode: s.linearMode,
      tactic: (w, outF32, M) => this.tactics.get(w, outF32, M),
      T: step.numTokens,
      R: step.logitRows.length,
      tokenIds: step.tokenIds,
      comm: s.comm,
      deviceComm: s.deviceComm,
      blockSize: this.kv.blockSize,
      kvScale: 1,
      meta: this.meta,
      layout,
      splits,
      partO: this.partO,
      partML: this.partML,
      splitsDone: this.splitsDone,
      decodeOnly: s.decodeOnly,
      decodeVariant,
      at: (name) => {
        const off = this.plan.offsets[name];
        return off !== undefined ? this.arena + off : this.weights.get(name).ptr;
      },
      weight: (name) => this.weights.get(name),
      isF32: (name) => this.f32.has(name),
      kvPtrs: (layer) => ({ k: this.kvBase + 2 * layer * kvLayer, v: this.kvBase + (2 * layer + 1) * kvLayer }),
      fp8Scratch: (bytes) => this.fp8Scratch(bytes),
    };
  }

  private fp8Scratch(bytes: number): { xq: DevPtr; amax: DevPtr; scale: DevPtr } {
    if (!this.fp8 || this.fp8.bytes < bytes) {
      // sized for the largest step up front, so a CUDA graph never sees it move
      const cap = Math.max(bytes, this.plan.capacity.T * this.maxLinearK());
      this.fp8 = { xq: this.driver.alloc(cap), amax: this.driver.alloc(4), scale: this.driver.alloc(4), bytes: cap };
    }
    return this.fp8;
  }

  private maxLinearK(): number {
    let k = 1;
    for (const op of this.graph.ops) if (op.op === "matmul") k = Math.max(k, this.weights.get(op.w).cols);
    return k;
  }

  copyBlock(src: number, dst: number): void {
    const n = this.kv.blockSize * this.kv.numKvHeads * this.kv.headDim * cacheBytes(this.s.cache);
    for (let l = 0; l < 2 * this.kv.numLayers; l++) {
      const base = this.kvBase + l * this.kvLayerBytes;
      this.driver.dtodAsync(base + dst * n, base + src * n, n, this.k.stream);
    }
    this.driver.syncStream(this.k.stream);
  }

  /** Bytes per activation element (for reports). */
  get actBytes(): number {
    return actBytes(this.s.act);
  }

  close(): void {
    this.dispose();
  }

  private disposed = false;

  /** Frees the device memory and graphs (idempotent); the bound cannot run afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const g of this.graphs.values()) this.driver.destroyGraph(g);
    this.graphs.clear();
    this.weights.dispose();
    for (const p of [this.arena, this.kvBase, this.meta, this.partO, this.partML, this.splitsDone]) this.driver.free(p);
    if (this.fp8) for (const p of [this.fp8.xq, this.fp8.amax, this.fp8.scale]) this.driver.free(p);
    this.select.dispose();
    this.driver.freeHost(this.staging.ptr);
  }
}

/**
 * One rank: loads its weights file, binds its graph to the engine's backend (reference,
 * cpu with its share of the threads, or cuda on GPU rank % deviceCount), which runs the
 * collectives through shared memory (cuda: host-staged, backends/cuda/host-collectives.ts),
 * then serves commands until told to quit. Steps are posted in order into `depth` slots
 * (several may be in flight: stage 0 starts step B while stage 1 still runs step A) and
 * every rank runs them one after another in that order, so each stage's KV writes follow
 * the order the main thread scheduled. For each step it runs the micro-batches in order
 * (a pipeline stage receives each from the stage before, sends it on to the next); the
 * last stage's first tensor-parallel rank writes the logits rows into the step's slot.
 */
import type { BoundGraph, KvDType, WeightMap } from "../backends/backend.js";
import type { Backend } from "../backends/backend.js";
import { CpuBackend } from "../backends/cpu/backend.js";
import { CudaBackend } from "../backends/cuda/backend.js";
import { CudaDriver } from "../backends/cuda/driver.js";
import { KERNELS_DIR_ENV } from "../backends/cuda/kernel-sources.js";
import type { NcclIds } from "../backends/cuda/nccl.js";
import { ReferenceBackend } from "../backends/reference/backend.js";
import type { KernelModule } from "../backends/cpu/wasm-module.js";
import { deserializeGraph, readManifest, WeightsReader, type EngineManifest, type RankManifest } from "../engine/format.js";
import { decodeWeight } from "../engine/weights.js";
import { rebaseLayers } from "../graph/passes/pipeline-stage.js";
import { LOGITS } from "../models/llama.js";
import { microBatchCount, splitStep } from "./micro-batch.js";
import { ShmCollectives } from "./shm-collectives.js";
import { decodeStep } from "./step-codec.js";
import { CMD_QUIT, failWorld, PeerFailed, STAT_FIELDS, STATS_AT, W, waitChange, WorldMap, type WorldBuffers, type WorldLayout } from "./world.js";

export interface RankInit {
  dir: string;
  rank: number;
  buffers: WorldBuffers;
  layout: WorldLayout;
  blockSize: number;
  numBlocks: number;
  kvDtype: KvDType;
  verify: boolean;
  /** Most micro-batches per step (pipeline stages > 1), and the fewest tokens one may hold (micro-batch.ts). */
  microBatches: number;
  minMicroBatchTokens: number;
  spin?: number;
  /** Threads of a cpu-target rank's pool, its own included. */
  threads: number;
  /** A cpu-target rank's kernels, compiled once by the main thread. */
  kernels?: KernelModule;
  /** A cuda-target rank's kernel sources, as the main thread finds them (a bundled rank cannot: see backend()). */
  cudaKernelsDir?: string;
  /** A cuda-target rank's NCCL ids (nccl-plan.ts); absent: host-staged collectives. */
  nccl?: NcclIds;
  /** Test hook: "RANK:STEP:throw|exit" makes that rank fail at that step (1-based). */
  fault?: string;
}

function loadWeights(dir: string, m: EngineManifest, r: RankManifest, verify: boolean): WeightMap {
  const reader = new WeightsReader(dir, { ...m, weights: r.weights });
  const weights: WeightMap = new Map();
  try {
    for (const e of r.weights.tensors) weights.set(e.name, decodeWeight(reader.read(e, verify), e.dtype));
  } finally {
    reader.close();
  }
  return weights;
}

/** "Error: message (at where)": the first stack frame is enough to find it. */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const at = e.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim();
  return `${e.name}: ${e.message}${at ? ` (${at})` : ""}`;
}

export class Rank {
  private readonly ctrl: Int32Array;
  private readonly map: WorldMap;
  private readonly comm: ShmCollectives;
  readonly bound: BoundGraph;
  private readonly r: RankManifest;
  private readonly last: boolean;
  private readonly vocab: number;
  private steps = 0;
  private stepUs = 0;
  /** [STAT_FIELDS] this rank's totals, read by the main thread (rank-group.ts stats()). */
  private readonly stats: Float64Array;

  constructor(private readonly init: RankInit) {
    const map = new WorldMap(init.layout);
    this.map = map;
    this.ctrl = new Int32Array(init.buffers.ctrl);
    const m = readManifest(init.dir);
    const r = m.parallel?.ranks[init.rank];
    if (!r) throw new Error(`${init.dir}: no rank ${init.rank} in engine.json`);
    this.r = r;
    this.last = r.stage === m.parallel!.pp - 1;
    this.vocab = m.model.vocabSize;
    this.comm = new ShmCollectives(map, init.buffers, r, init.spin);
    this.stats = new Float64Array(init.buffers.ctrl, STATS_AT + init.rank * STAT_FIELDS * 8, STAT_FIELDS);
    const kv = { numLayers: r.layers[1] - r.layers[0], numBlocks: init.numBlocks, blockSize: init.blockSize, numKvHeads: r.kvHeads, headDim: m.model.headDim, dtype: init.kvDtype };
    const graph = rebaseLayers(deserializeGraph(r.graph), r.layers[0]); // its cache holds only its layers
    const backend = this.backend(m);
    this.bound = backend.bind(graph, loadWeights(init.dir, m, r, init.verify), kv, r.memoryPlan);
    this.stats[7] = this.bound.kvBytes;
  }

  private backend(m: EngineManifest): Backend {
    const { init, comm } = this;
    if (m.target === "cpu") return new CpuBackend({ comm, threads: init.threads, spin: init.spin, kernels: init.kernels });
    if (m.target !== "cuda") return new ReferenceBackend({ comm });
    // one GPU per rank where there are enough; on fewer (the emulator: one) ranks share them
    const deviceOrdinal = init.rank % CudaDriver.countDevices();
    const fp8 = m.build.dtype === "fp8" ? ({ dtype: "bf16", weightFormat: "fp8" } as const) : {}; // as engine/targets.ts
    const p = m.parallel!;
    const nccl = init.nccl && { ids: init.nccl, place: { rank: init.rank, stage: this.r.stage, tpRank: this.r.tpRank, tp: p.tp, world: p.tp * p.pp } };
    // an engine without cubins for this GPU compiles them here, from sources a bundled rank would look for next to the bundle
    if (init.cudaKernelsDir) process.env[KERNELS_DIR_ENV] ??= init.cudaKernelsDir;
    return new CudaBackend({ engineDir: init.dir, comm, deviceOrdinal, nccl, ...fp8 });
  }

  /** Serves commands until CMD_QUIT or a failure; never throws. */
  serve(): void {
    // commands run one at a time in posting order: `seq` is the last one this rank ran
    for (let seq = 0; ; seq++) {
      try {
        waitChange(this.ctrl, W.CMD_SEQ, seq, this.init.spin); // CMD_SEQ only grows: returns once command seq + 1 is posted
      } catch {
        return; // a peer failed while this rank was idle: nothing to clean up
      }
      if (Atomics.load(this.ctrl, W.CMD) === CMD_QUIT) return;
      const slot = seq % this.map.depth;
      try {
        const t0 = performance.now();
        this.step(slot);
        this.stepUs += (performance.now() - t0) * 1000;
        const t = this.comm.times;
        this.stats.set([t.allReduceUs, t.allGatherUs, t.sendUs, t.recvUs, t.calls, this.steps, this.stepUs], 0);
        this.stats[8] = this.stepUs - (t.allReduceUs + t.allGatherUs + t.sendUs + t.recvUs); // what a pipeline keeps busy
      } catch (e) {
        if (!(e instanceof PeerFailed)) failWorld(this.ctrl, this.init.rank, `rank ${this.init.rank} (stage ${this.r.stage}, tp rank ${this.r.tpRank}) failed: ${describe(e)}`);
        return;
      }
      Atomics.add(this.ctrl, W.DONE + slot, 1);
      Atomics.notify(this.ctrl, W.DONE + slot);
    }
  }

  private step(slot: number): void {
    this.steps++;
    this.injectFault();
    const words = this.init.layout.stepWords;
    const { step, copies } = decodeStep(new Int32Array(this.init.buffers.step, slot * words * 4, words));
    const logits = new Float32Array(this.init.buffers.data, this.map.logitsOf(slot) * 4, this.init.layout.logitFloats);
    for (const [src, dst] of copies) this.bound.copyBlock(src, dst);
    const V = this.vocab;
    const pieces = microBatchCount(step.numTokens, this.init.microBatches, this.init.minMicroBatchTokens); // every rank cuts alike
    for (const mb of splitStep(step, pieces)) {
      const out = this.bound.forward(mb.step);
      if (!this.last || this.r.tpRank !== 0) continue;
      const rows = out.get(LOGITS)!; // [R_mb, V]
      mb.rows.forEach((row, i) => logits.set(rows.subarray(i * V, (i + 1) * V), row * V));
    }
  }

  private injectFault(): void {
    const [rank, step, how] = (this.init.fault ?? "").split(":");
    if (Number(rank) !== this.init.rank || Number(step) !== this.steps) return;
    if (how === "exit") process.exit(3);
    throw new Error(`injected fault at step ${step}`);
  }
}

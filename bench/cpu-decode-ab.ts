/**
 * A / B of two CPU kernel builds (or two KV cache dtypes) on whole-model decode, in one
 * process: two engines over the same synthetic GGUF, each decoding its own sequence after a
 * --prompt-token prefill, their decode steps interleaved one by one (which engine goes first
 * alternates), so both see the same machine moment by moment. This machine's speed drifts by
 * 20% and more between runs a minute apart; side by side, the ratio holds to ~2%.
 *
 *   node --import tsx bench/cpu-decode-ab.ts --a DIR_OR_WASM --b DIR_OR_WASM [--dtype q4_0]
 *     [--kv-a f32] [--kv-b f32] [--prompt-tokens 512] [--gen-tokens 128] [--rounds 3] [--threads 1]
 *     [--row-major-a] [--interleaved-a] [--small-pages-a] [--seqs 1]
 *
 * DIR: a folder holding kernels.relaxed.wasm (e.g. a copy of dist/src/backends/cpu/wasm made
 * before a change); the same folder twice with --kv-a / --kv-b compares KV dtypes, and with
 * --row-major-a A's matrices all row-major (no column blocks) against B's default layout, and with
 * --interleaved-a A's int4 g32 in the 4-row interleaved layout instead of the lanes one, and with
 * --small-pages-a A's memory on 4 KiB pages (no transparent huge pages asked for). With
 * --seqs S each engine decodes S sequences, one token of each a step (tok/s counts all). Prints each
 * round's decode tok/s and the median of the per-round speed ratios B / A.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { KvDType } from "../src/backends/backend.js";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { wasm } from "../src/backends/cpu/wasm-api.js";
import { kernelModule, type KernelModule } from "../src/backends/cpu/wasm-module.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { median } from "../src/eval/latency.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    a: { type: "string" },
    b: { type: "string" },
    shape: { type: "string", default: "llama-110m" },
    dtype: { type: "string", default: "q4_0" },
    "kv-a": { type: "string", default: "f32" },
    "kv-b": { type: "string" },
    "prompt-tokens": { type: "string", default: "512" },
    "gen-tokens": { type: "string", default: "128" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string", default: "1" },
    // sequences decoding together: each step takes one token of each
    seqs: { type: "string", default: "1" },
    // A with every matrix row-major (CpuBackendOptions.colBlocks false), to measure the column blocks
    "row-major-a": { type: "boolean", default: false },
    // A with int4 g32 interleaved (CpuBackendOptions.packedLanes false), to measure the lanes layout
    "interleaved-a": { type: "boolean", default: false },
    // A without transparent huge pages (CpuBackendOptions.hugePages false)
    "small-pages-a": { type: "boolean", default: false },
  },
});
if (!a.a || !a.b) throw new Error("cpu-decode-ab: --a and --b name the two kernel builds (a folder with kernels.relaxed.wasm, or a .wasm file)");
const P = Number(a["prompt-tokens"]), G = Number(a["gen-tokens"]), rounds = Number(a.rounds), threads = Number(a.threads), S = Number(a.seqs);
const kvA = a["kv-a"] as KvDType, kvB = (a["kv-b"] ?? kvA) as KvDType;
const dense: Record<string, "fp32" | "fp16" | "bf16"> = { f32: "fp32", f16: "fp16", bf16: "bf16" };

/** A build's kernels, compiled here (the process's own module first: it turns relaxed SIMD on where Node needs a flag). */
function kernels(where: string): KernelModule {
  kernelModule();
  const bytes = readFileSync(where.endsWith(".wasm") ? where : join(where, "kernels.relaxed.wasm"));
  return { module: new wasm.Module(bytes), simd: "relaxed" };
}

const config = syntheticSpecConfig(`synthetic:${a.shape}`);
if (!config) throw new Error(`cpu-decode-ab: unknown shape ${a.shape}`);
const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", a.dtype as TensorDType).path);
const limits = { maxSeqLen: P + G + 1, maxSeqs: S, maxBatchTokens: Math.max(P, 16, S), maxLogitRows: S };
// packed formats go through an engine dir: in-memory builds keep no packed weights
const engineDir = dense[a.dtype!] ? undefined : mkdtempSync(join(tmpdir(), "llmrt-decode-ab-"));
if (engineDir) buildEngineDir(ckpt, engineDir, { target: "cpu", ...limits });

function engine(where: string, kvDtype: KvDType, colBlocks = true, packedLanes = true, hugePages = true): Engine {
  const backend = new CpuBackend({ threads, kernels: kernels(where), colBlocks, packedLanes, hugePages });
  if (engineDir) return Engine.load(engineDir, { backend, blockSize: 16, kvDtype });
  return Engine.fromCheckpoint(ckpt, { backend, dtype: dense[a.dtype!], blockSize: 16, kvDtype, ...limits });
}

const engines = [engine(a.a, kvA, !a["row-major-a"], !a["interleaved-a"], !a["small-pages-a"]), engine(a.b, kvB)];
const tokPerS: [number[], number[]] = [[], []];
const ratios: number[] = [];
console.log(`command: node --import tsx bench/cpu-decode-ab.ts ${process.argv.slice(2).join(" ")}`);
console.log(`machine: ${machineLine()}`);
try {
  // round 0 warms up (JIT, page faults) and is not counted
  for (let r = 0; r <= rounds; r++) {
    const seqs: Sequence[][] = engines.map((e) => {
      const pool = new BlockPool(e.kv.numBlocks, e.kv.blockSize, false);
      return Array.from({ length: S }, (_, j) => {
        const s: Sequence = new Sequence(j, Array.from({ length: P + G }, (_, i) => (i * 7919 + 13 + 101 * j) % config.vocabSize));
        pool.reserve(s, P + G);
        return s;
      });
    });
    // one step of engine k: n new tokens of each of its sequences in `which`
    const step = (k: number, n: number, which = seqs[k]) => {
      const s = buildStep(which.map((seq) => ({ seq, numNew: n, wantLogits: true })), engines[k].kv.blockSize);
      const t = performance.now();
      engines[k].forward(s);
      for (const seq of which) seq.numComputed += n;
      return performance.now() - t;
    };
    if (P > 0) for (let j = 0; j < S; j++) (step(0, P, [seqs[0][j]]), step(1, P, [seqs[1][j]]));
    const ms = [0, 0];
    for (let i = 0; i < G; i++) {
      const first = i & 1;
      ms[first] += step(first, 1);
      ms[1 - first] += step(1 - first, 1);
    }
    if (r === 0) continue;
    tokPerS[0].push((1000 * G * S) / ms[0]);
    tokPerS[1].push((1000 * G * S) / ms[1]);
    ratios.push(ms[0] / ms[1]);
    console.log(`round ${r}: A ${tokPerS[0].at(-1)!.toFixed(1)}, B ${tokPerS[1].at(-1)!.toFixed(1)} tok/s`);
  }
  console.log(`${a.shape} ${a.dtype}, ${threads} thread(s), ${S} sequence(s), prompt ${P}, ${G} decode steps, KV ${kvA} / ${kvB}: A ${median(tokPerS[0]).toFixed(1)}, B ${median(tokPerS[1]).toFixed(1)} tok/s (medians); B / A speed ${median(ratios).toFixed(3)} (median of ${rounds} rounds)`);
} finally {
  ckpt.close();
  if (engineDir) rmSync(engineDir, { recursive: true, force: true });
}

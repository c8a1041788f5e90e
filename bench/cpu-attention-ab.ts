/**
 * Whole-model prefill with prefill attention through BLAS (blas-attention.ts) against the
 * WASM attention kernel alone: the same engine bound twice in one process, prefills
 * alternating, the median of --rounds each and their ratio (this machine's speed drifts
 * within minutes: only side-by-side figures hold).
 *
 *   node --import tsx bench/cpu-attention-ab.ts [--shape llama-110m] [--dtype q4_0] [--threads 1]
 *     [--prompt 512] [--kv-dtype f16] [--rounds 3]
 *
 * --dtype: f32 / bf16 / f16 or a packed GGUF type of bench/decode-rate.ts (q8_0, q4_0, ...).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { KvDType } from "../src/backends/backend.js";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import type { TensorDType } from "../src/checkpoint/types.js";
import { measureLatency, median } from "../src/cli/bench.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { PACKED_DTYPES } from "./decode-rate.js";
import { machineLine } from "./machine.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtype: { type: "string", default: "q4_0" },
    threads: { type: "string", default: "1" },
    prompt: { type: "string", default: "512" },
    "kv-dtype": { type: "string", default: "f16" },
    rounds: { type: "string", default: "3" },
  },
});
const P = Number(a.prompt);
const threads = Number(a.threads);
const config = syntheticSpecConfig(`synthetic:${a.shape}`);
if (!config) throw new Error(`cpu-attention-ab: unknown --shape ${a.shape}`);
console.log(`# node --import tsx bench/cpu-attention-ab.ts ${process.argv.slice(2).join(" ")}`);
console.log(`# ${machineLine()}; ${new Date().toISOString()}`);
const q = PACKED_DTYPES[a.dtype];
const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", (q?.peer ?? a.dtype) as TensorDType).path);
const sizes = { maxSeqLen: P + 5, maxSeqs: 1, maxBatchTokens: P, maxLogitRows: 1 };
// packed engines go through an engine dir: in-memory builds keep no packed weights
const dir = q ? mkdtempSync(join(tmpdir(), "llmrt-attn-ab-")) : undefined;
if (dir) buildEngineDir(ckpt, dir, { target: "cpu", quant: q!.quant, ...sizes });
const kvDtype = a["kv-dtype"] as KvDType;
const engineWith = (blasAttention: number | false) => {
  const backend = new CpuBackend({ threads, blasAttention });
  if (dir) return Engine.load(dir, { backend, blockSize: 16, kvDtype });
  return Engine.fromCheckpoint(ckpt, { backend, dtype: a.dtype === "f32" ? "fp32" : a.dtype === "f16" ? "fp16" : "bf16", ...sizes, blockSize: 16, kvDtype });
};
const engines = [engineWith(64), engineWith(false)];
const tps: number[][] = [[], []];
for (let r = 0; r < Number(a.rounds); r++) engines.forEach((e, i) => tps[i].push(P / measureLatency(e, P, 4, 1).prefill[0]));
const [blas, wasm] = tps.map(median);
const list = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
console.log(`${a.shape} ${a.dtype}, ${threads} thread(s), pp${P}, ${kvDtype} KV: BLAS attention ${blas.toFixed(1)} tok/s [${list(tps[0])}], WASM attention ${wasm.toFixed(1)} tok/s [${list(tps[1])}], ratio ${(blas / wasm).toFixed(2)}`);
if (dir) rmSync(dir, { recursive: true, force: true });
process.exit(0);

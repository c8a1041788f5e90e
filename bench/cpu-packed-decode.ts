/**
 * Decode speed of packed engines on the cpu target alone (no llama.cpp): the engines
 * bench/compare-llamacpp.ts runs (Q8_0 / Q4_0 GGUF kept packed, `--quant int8-wo` /
 * `int4-wo` g32 from the F32 GGUF), decode tok/s after a prompt, best and median of rounds,
 * then (--profile) milliseconds per token in each op kind (one wake-up per op: slower).
 *
 *   node --import tsx bench/cpu-packed-decode.ts [--shape llama-110m] [--dtypes q8_0,q4_0,int8-wo,int4-wo]
 *     [--threads 1] [--rounds 3] [--prompt 512] [--gen 128] [--kv-dtype f32] [--profile]
 *
 * Besides wall time, the process's CPU time per decode step (1 thread: the kernels run on
 * the main thread), which other load on a shared machine disturbs far less.
 */
import { parseArgs } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend, type CpuBound } from "../src/backends/cpu/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { median } from "../src/cli/bench.js";
import type { KvDType } from "../src/backends/backend.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import { syntheticModelFile, syntheticSpecConfig } from "../src/models/synthetic-files.js";
import { PACKED_DTYPES, engineDecodeRate } from "./decode-rate.js";

const { values: a } = parseArgs({
  options: {
    shape: { type: "string", default: "llama-110m" },
    dtypes: { type: "string", default: "q8_0,q4_0,int8-wo,int4-wo" },
    threads: { type: "string", default: "1" },
    rounds: { type: "string", default: "3" },
    prompt: { type: "string", default: "512" },
    gen: { type: "string", default: "128" },
    profile: { type: "boolean", default: false },
    "kv-dtype": { type: "string", default: "f32" },
  },
});
const P = Number(a.prompt);
const G = Number(a.gen);
const config = syntheticSpecConfig(`synthetic:${a.shape}`)!;
const tokens = Array.from({ length: P + G }, (_, i) => 3 + ((i * 7919) % (config.vocabSize - 3)));
for (const dt of a.dtypes.split(",")) {
  const q = PACKED_DTYPES[dt];
  const ckpt = openCheckpoint(syntheticModelFile(config, "gguf", q.file).path);
  const dir = mkdtempSync(join(tmpdir(), "llmrt-pdecode-"));
  buildEngineDir(ckpt, dir, { target: "cpu", quant: q.quant, maxSeqLen: P + G + 1, maxSeqs: 1, maxBatchTokens: Math.max(P, 16), maxLogitRows: 1 });
  ckpt.close();
  for (const threads of a.threads.split(",").map(Number)) {
    for (const profile of a.profile ? [false, true] : [false]) {
      const cpu = new CpuBackend({ threads, profile });
      let bound: CpuBound | undefined;
      const backend = { name: cpu.name, packedDTypes: cpu.packedDTypes, bind: (...args: Parameters<CpuBackend["bind"]>) => (bound = cpu.bind(...args)) };
      const engine = Engine.load(dir, { backend, blockSize: 16, kvDtype: a["kv-dtype"] as KvDType });
      if (!profile) {
        const tg: number[] = [];
        const cpu: number[] = [];
        for (let r = 0; r < Number(a.rounds) + 1; r++) {
          const [wall, cpuRate] = engineDecodeRate(engine, tokens, P, G);
          // round 0 warms up
          if (r > 0) (tg.push(wall), cpu.push(1000 / cpuRate));
        }
        console.log(`${dt} ${threads}t kv ${a["kv-dtype"]}: tg${G} after pp${P}: best ${Math.max(...tg).toFixed(1)} median ${median(tg).toFixed(1)} tok/s (${tg.map((x) => x.toFixed(1)).join(", ")}); CPU ms/token best ${Math.min(...cpu).toFixed(2)} median ${median(cpu).toFixed(2)}`);
      } else {
        engineDecodeRate(engine, tokens, P, G, () => bound!.opTimes.clear());
        const ms = [...bound!.opTimes].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${(v / G).toFixed(3)}`);
        console.log(`${dt} ${threads}t kv ${a["kv-dtype"]} profile (ms/token after pp${P}, wall): ${ms.join(", ")}`);
      }
      bound?.close();
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

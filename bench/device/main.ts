/**
 * The GPU side of bench/device-check.sh (bundled into .device/app/device.mjs by
 * bench/device-prep.sh; also runs from source with tsx):
 *
 *   device env          --out DIR            device, driver and the CUDA libraries found
 *   device correctness  --out DIR --shared DIR  backend vs reference, goldens
 *   device hf           --out DIR --hf-dir DIR  logits vs transformers (hf_models.py output)
 *   device speed        --out DIR --quick|--big HBM, decode b1, throughput 1/8/64
 *   device profile      --out DIR [--shapes a,b] [--batches 1,8,64] [--context N]
 *                                            where a decode step's GPU and host time goes
 *   device attention    --out DIR [--shapes a,b] [--rows 1,8,64] [--contexts 256,1024,4096]
 *                                            decode attention alone: each form, rows x context
 *   device table        --out DIR            the summary table
 *
 * --pdl / --no-pdl: launch every step's kernels overlapped (programmatic dependent launch,
 *   settings.pdl) / none; without either, the default ("auto": small decode steps only);
 * --linear MODE: force a matmul path (gemv, gemv4, cublas, gemm) instead of the bind-time tactics.
 * --tag T: write NAME-T.json instead of NAME.json.
 * --cubins DIR: a folder with kernels/<unit>.sm_90.cubin (prepared here without a GPU);
 * without it, or on another architecture, the kernels compile on the GPU machine.
 * Every stage writes its JSON as it goes, so a stage cut short still leaves its rows.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CudaDriver } from "../../src/backends/cuda/driver.js";
import { describeLibraries } from "../../src/backends/cuda/libs.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { runBackendCases, runGoldens, runPackedEngines, type CheckRow } from "./correctness.js";
import { runHfComparison } from "./hf.js";
import { BIG_SHAPES, QUICK_SHAPES, shapeConfig } from "./shapes.js";
import { attentionTable } from "./attention.js";
import { formatProfile, profileBatch } from "./profile.js";
import { dummyEngine, measureConcurrency, measureDecode, measureHbm } from "./speed.js";
import { summaryTable } from "./table.js";

const args = process.argv.slice(2);
const cmd = args[0];
const opt = (name: string, dflt = ""): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const out = opt("out", "bench/out");
const base: CudaBackendOptions = {
  ...(opt("cubins") ? { engineDir: opt("cubins") } : {}),
  ...(args.includes("--pdl") ? { pdl: true } : args.includes("--no-pdl") ? { pdl: false } : {}),
  ...(opt("linear") ? { linear: opt("linear") as CudaBackendOptions["linear"] } : {}),
};
/** --tag T: JSON files written as NAME-T.json (e.g. a second pass with --pdl beside the first). */
const tag = opt("tag");

function save(file: string, data: unknown): void {
  writeFileSync(join(out, tag ? file.replace(/\.json$/, `-${tag}.json`) : file), JSON.stringify(data, null, 1) + "\n");
}

function logRow(r: CheckRow): void {
  console.log(`${r.ok ? "PASS" : "FAIL"} ${r.check}: ${r.detail} (${(r.ms / 1000).toFixed(1)} s)`);
}

async function main(): Promise<void> {
  switch (cmd) {
    case "env": {
      const libraries = describeLibraries();
      let device: unknown = null;
      let error: string | undefined;
      try {
        const d = CudaDriver.open();
        device = { ...d.info, arch: d.arch, memory: d.memInfo() };
      } catch (e) {
        error = (e as Error).message;
      }
      save("env.json", { node: process.version, libraries, device, error });
      console.log(JSON.stringify({ libraries, device, error }, null, 1));
      return;
    }
    case "correctness": {
      const rows: CheckRow[] = [];
      const log = (r: CheckRow) => (logRow(r), rows.push(r), save("correctness.json", { rows }));
      // goldens first: the most telling check if the stage runs out of time
      await runGoldens(opt("shared", ".device/fixtures"), base, log);
      runBackendCases(base, log);
      runPackedEngines(base, log);
      return;
    }
    case "hf": {
      const rows: CheckRow[] = [];
      runHfComparison(opt("hf-dir"), base, (r) => (logRow(r), rows.push(r), save("hf.json", { rows })));
      save("hf.json", { rows });
      return;
    }
    case "speed": {
      const mode = args.includes("--big") ? "big" : "quick";
      const d = CudaDriver.open();
      const hbm = measureHbm(d);
      console.log(`HBM: ${hbm.toFixed(0)} GB/s (device-to-device copy, read + write)`);
      const runs: unknown[] = [];
      const file = `speed-${mode}.json`;
      const variants: [string, CudaBackendOptions][] = mode === "big" ? [["bf16", {}], ["fp8", { weightFormat: "fp8" }]] : [["bf16", {}]];
      // weight-only int4, symmetric (i4) and with zero points (i4z: AWQ / GPTQ / --int4-asym), g128:
      // decode at batch 1 only (what int4 weights are for), after every shape's main variants
      // so they never push those out of the stage's time
      const int4: [string, CudaBackendOptions][] = [["i4 g128", { weightFormat: "i4", int4GroupSize: 128 }], ["i4z g128", { weightFormat: "i4z", int4GroupSize: 128 }]];
      // --shapes / --concurrency / --tokens shrink a dry run (bench/device-check.sh on the CPU emulator)
      const shapes = opt("shapes") ? opt("shapes").split(",") : mode === "big" ? BIG_SHAPES : QUICK_SHAPES;
      const conc = opt("concurrency", "1,8,64").split(",").map(Number);
      const N = Number(opt("tokens", "128"));
      const plan = [...shapes.flatMap((shape) => variants.map(([v, o]) => [shape, v, o, false] as const)), ...shapes.flatMap((shape) => int4.map(([v, o]) => [shape, v, o, true] as const))];
      for (const [shape, variant, o, decodeOnly] of plan) {
        const run: Record<string, unknown> = { shape, variant };
        runs.push(run);
        try {
          const e = dummyEngine(shapeConfig(shape), 64, 512, 2048, { ...base, ...o });
          run.memory = e.bound.memorySummary;
          run.decode = measureDecode(e, N, mode === "big" ? N / 2 : N, mode === "big" ? 2 : 3, hbm);
          console.log(`${shape} ${variant} decode: ${JSON.stringify(run.decode)}`);
          if (!decodeOnly) {
            run.throughput = conc.map((c) => {
              const t = measureConcurrency(e, c, N, N, 2048);
              console.log(`${shape} ${variant} c${c}: ${JSON.stringify(t)}`);
              return t;
            });
          }
          e.bound.dispose();
        } catch (err) {
          run.error = (err as Error).message.split("\n")[0];
          console.log(`${shape} ${variant}: ERROR ${run.error}`);
        }
        save(file, { hbm_gbps: hbm, runs });
      }
      return;
    }
    case "profile": {
      const shapes = opt("shapes", "llama-110m,tinyllama-1.1b,llama-3-8b").split(",");
      const batches = opt("batches", "1,8,64").split(",").map(Number);
      const context = Number(opt("context", "256"));
      const runs: unknown[] = [];
      for (const shape of shapes) {
        const run: Record<string, unknown> = { shape };
        runs.push(run);
        try {
          const t0 = performance.now();
          const e = dummyEngine(shapeConfig(shape), Math.max(...batches), context + 64, 2048, base);
          run.bind_ms = performance.now() - t0;
          run.tactics = e.bound.tactics.summary();
          run.attention = e.bound.attnPick;
          console.log(`${shape}: bound in ${(run.bind_ms as number).toFixed(0)} ms; tactics (us at M = 1/2/4/8):\n  ${(run.tactics as string[]).join("\n  ")}\n  decode attention: ${JSON.stringify(e.bound.attnPick)}`);
          run.batches = batches.map((b) => {
            const p = profileBatch(e, b, context);
            console.log(formatProfile(shape, p));
            save("profile.json", { runs });
            return p;
          });
          e.bound.dispose();
        } catch (err) {
          run.error = (err as Error).message.split("\n")[0];
          console.log(`${shape}: ERROR ${run.error}`);
        }
        save("profile.json", { runs });
      }
      return;
    }
    case "attention": {
      const shapes = opt("shapes", "llama-110m,tinyllama-1.1b,llama-3-8b").split(",");
      const rows: unknown[] = [];
      for (const shape of shapes) {
        try {
          const nums = (name: string, d: string) => opt(name, d).split(",").map(Number);
          rows.push(...attentionTable([shape], base, (l) => console.log(l), nums("rows", "1,8,64"), nums("contexts", "256,1024,4096")));
        } catch (err) {
          console.log(`${shape}: ERROR ${(err as Error).message.split("\n")[0]}`);
        }
        save("attention.json", { rows });
      }
      return;
    }
    case "table":
      console.log(summaryTable(out));
      return;
    default:
      console.error("usage: device env|correctness|hf|speed|table --out DIR [--shared DIR] [--hf-dir DIR] [--cubins DIR] [--quick|--big] [--shapes a,b --concurrency 1,8 --tokens N]");
      process.exitCode = 2;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

/**
 * Packed engine weights on the cuda target: `--quant int8-wo | int4-wo` engines keep their
 * int8 / int4 bytes on the device wherever the layout is a device format (i8 per row,
 * i4 per row and group), and run on the CPU emulator with the reference backend's logits
 * (same engine, same packed weights) and its greedy tokens; a layout that does not map
 * (asymmetric int4) is dequantized at bind, and the log says so and why.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeStep, relError, scriptedSteps } from "../../bench/device/compare.js";
import type { BoundGraph, KvCacheShape, PackedWeightMap, WeightMap } from "../../src/backends/backend.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import type { CudaBound } from "../../src/backends/cuda/bound.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { cubinFile } from "../../src/backends/cuda/engine-files.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { describeUploads, packedDeviceFormat } from "../../src/backends/cuda/packed-upload.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { deserializeGraph, readManifest, WeightsReader } from "../../src/engine/format.js";
import type { BuildOptions } from "../../src/engine/options.js";
import { decodeEntry } from "../../src/engine/packed-weights.js";
import type { Graph } from "../../src/graph/ir.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import type { PackedLayout } from "../../src/quant/packed.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`cuda packed-weight tests: ${missing}`);

const ELF = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);
/** A random Llama whose every matmul K (128, 256) divides by 128. */
const CONFIG = syntheticConfig({ hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 256, vocabSize: 128, numLayers: 2 });
const BUILD: Partial<BuildOptions> = { target: "cuda", maxSeqs: 3, maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64 };
/** The f32-activation tolerance of test/unit/cuda-emu.test.ts: int8 / int4 times f32 is exact, only sums differ in order. */
const F32_TOL = 2e-5;

const layout = (groupSize: number, asym = false): PackedLayout => ({ groupSize, asym, scale: "f32" });

describe("packed weights on the cuda target", () => {
  test("which packed layouts are a device format, and why the others are not", () => {
    const fmt = (dtype: "int8" | "int4", cols: number, l: PackedLayout, act: "f32" | "bf16" | "f16" = "f32") => packedDeviceFormat({ dtype, cols, layout: l }, act);
    assert.deepEqual(fmt("int8", 256, layout(256)), { fmt: "i8", group: 256 });
    assert.match((fmt("int8", 256, layout(32)) as { why: string }).why, /groups of 32 .*one scale per row/); // GGUF Q8_0
    assert.deepEqual(fmt("int4", 256, layout(128)), { fmt: "i4", group: 128 });
    assert.deepEqual(fmt("int4", 96, layout(32), "bf16"), { fmt: "i4", group: 32 }); // GGUF Q4_0
    assert.deepEqual(fmt("int4", 64, layout(128)), { fmt: "i4", group: 64 }); // one group per row: the row is the group
    assert.match((fmt("int4", 172, layout(128)) as { why: string }).why, /ragged last group \(172 columns in groups of 128\)/);
    assert.match((fmt("int4", 48, layout(128)) as { why: string }).why, /groups of 48 columns/);
    assert.match((fmt("int4", 256, layout(64, true)) as { why: string }).why, /asymmetric/);
    assert.match((fmt("int4", 256, layout(128), "f16") as { why: string }).why, /no int4 kernels for f16/);
    const line = describeUploads(
      [
        { name: "a", from: "int4 g128", to: "i4 g128" },
        { name: "b", from: "int4 g128", to: null, why: "ragged last group (172 columns in groups of 128)" },
      ],
      "as f32",
    );
    assert.equal(line, "cuda: 1 of 2 packed weights stay packed on the GPU (1 int4 g128 -> i4 g128); 1 dequantized at load and stored as f32: 1 int4 g128: ragged last group (172 columns in groups of 128) (b)");
  });

  describe("on the CPU emulator", { skip: missing ?? false }, () => {
    let root = "";
    const built = new Map<string, { dir: string; log: string[] }>();
    /** Builds (once) the random Llama for the cuda target under --quant; engine cubins are ELF stubs the emulator accepts. */
    const engine = (name: string, quant: BuildOptions["quant"], dtype: BuildOptions["dtype"] = "fp32") => {
      if (built.has(name)) return built.get(name)!;
      const dir = join(root, name);
      const log: string[] = [];
      const files = new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]));
      buildEngineDir(syntheticCheckpoint(CONFIG, 11), dir, { ...BUILD, dtype, quant }, { files, onLog: (l) => log.push(l) });
      built.set(name, { dir, log });
      return { dir, log };
    };
    before(async () => {
      process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
      root = mkdtempSync(join(tmpdir(), "llmrt-cuda-packed-"));
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    for (const [name, quant, want] of [
      ["int8-wo", { scheme: "int8-wo" }, "i8"],
      ["int4-wo g128", { scheme: "int4-wo", groupSize: 128 }, "i4 g128"],
      ["int4-wo g32", { scheme: "int4-wo", groupSize: 32 }, "i4 g32"],
    ] as const) {
      test(`${name}, fp32 engine: every linear weight stays ${want} on the device; logits within ${F32_TOL} of the reference, greedy tokens equal`, (t) => {
        const { dir, log } = engine(name, quant);
        assert.ok(log.some((l) => l.startsWith(`cuda: 9 of 9 packed weights stay packed on the GPU (9 `) && l.includes(`-> ${want})`)), log.join("\n"));
        const eng = Engine.load(dir, { numBlocks: 8 }); // the CLI's path: the target's backend, load.ts hands it the packed weights
        try {
          const bound = (eng as unknown as { bound: CudaBound }).bound;
          const linear = bound.deviceWeights.all().filter((w) => w.role === "linear");
          assert.equal(linear.length, 9);
          for (const w of linear) assert.equal(w.fmt === "i4" ? `i4 g${w.group}` : w.fmt, want, w.name);
          assert.ok(bound.packedUploads.every((u) => u.to === want));
          const ref = referenceBind(dir, eng.kv);
          const r = compare(eng, ref, CONFIG.vocabSize);
          t.diagnostic(`max relative logit error ${r.maxRel.toExponential(2)}; greedy ${r.greedy.cuda.join(" ")}`);
          assert.ok(r.maxRel <= F32_TOL, `max relative logit error ${r.maxRel.toExponential(2)} (per step ${r.rel.map((x) => x.toExponential(1)).join(" ")})`);
          assert.deepEqual(r.greedy.cuda, r.greedy.ref);
        } finally {
          eng.close();
        }
      });
    }

    test("int4-wo g64 on a bf16 engine: i4 with bf16 activations, within the bf16 tolerance; greedy tokens equal", () => {
      const { dir } = engine("int4-wo g64 bf16", { scheme: "int4-wo", groupSize: 64 }, "bf16");
      const eng = Engine.load(dir, { numBlocks: 8 });
      try {
        const bound = (eng as unknown as { bound: CudaBound }).bound;
        assert.ok(bound.deviceWeights.all().filter((w) => w.role === "linear").every((w) => w.fmt === "i4" && w.group === 64));
        assert.equal(bound.deviceWeights.all().find((w) => w.role === "table")?.fmt, "bf16");
        const r = compare(eng, referenceBind(dir, eng.kv), CONFIG.vocabSize);
        assert.ok(r.maxRel <= 3e-2, `max relative logit error ${r.maxRel.toExponential(2)}`);
        assert.deepEqual(r.greedy.cuda, r.greedy.ref);
      } finally {
        eng.close();
      }
    });

    test("asymmetric int4 falls back: dequantized at bind and stored f32, the log says why; logits still the reference's", () => {
      const { dir, log } = engine("int4-wo g64 asym", { scheme: "int4-wo", groupSize: 64, asym: true });
      assert.ok(log.some((l) => /^cuda: 0 of 9 packed weights stay packed on the GPU; 9 dequantized at load and stored as f32: 9 int4 g64 asym: asymmetric int4/.test(l)), log.join("\n"));
      const { graph, weights, packed, plan } = readEngine(dir);
      const lines: string[] = [];
      const kv = kvShape(8);
      const bound = new CudaBackend({ engineDir: dir, onLog: (l) => lines.push(l) }).bind(graph, weights, kv, plan, packed);
      try {
        assert.equal(lines.length, 1);
        assert.match(lines[0], /^cuda: 0 of 9 packed weights stay packed on the GPU; 9 dequantized at load and stored as f32: 9 int4 g64 asym: asymmetric int4 \(the i4 kernels' zero point is 8\) \(blk\.0\./);
        assert.ok(bound.deviceWeights.all().filter((w) => w.role === "linear").every((w) => w.fmt === "f32"));
        assert.ok(bound.packedUploads.every((u) => u.to === null && /asymmetric/.test(u.why!)));
        const r = compare(bound, new ReferenceBackend().bind(graph, weights, kv, plan, packed), CONFIG.vocabSize, true);
        assert.ok(r.maxRel <= F32_TOL, `max relative logit error ${r.maxRel.toExponential(2)}`);
      } finally {
        bound.close();
      }
    });
  });
});

function kvShape(numBlocks: number): KvCacheShape {
  return { numLayers: CONFIG.numLayers, numBlocks, blockSize: 16, numKvHeads: CONFIG.numKvHeads, headDim: CONFIG.headDim, dtype: "f32" };
}

/** An engine dir's graph, float weights, packed weights (kept packed) and memory plan. */
function readEngine(dir: string): { graph: Graph; weights: WeightMap; packed: PackedWeightMap; plan: ReturnType<typeof readManifest>["memoryPlan"] } {
  const m = readManifest(dir);
  const reader = new WeightsReader(dir, m);
  const weights: WeightMap = new Map();
  const packed: PackedWeightMap = new Map();
  try {
    for (const e of m.weights.tensors) {
      const w = decodeEntry(reader.read(e, true), e, true);
      if (w instanceof Float32Array) weights.set(e.name, w);
      else packed.set(e.name, w);
    }
  } finally {
    reader.close();
  }
  return { graph: deserializeGraph(m.graph), weights, packed, plan: m.memoryPlan };
}

/** The reference backend on the same engine's graph and packed weights (a cuda-target dir does not load on it by Engine.load). */
function referenceBind(dir: string, kv: KvCacheShape): BoundGraph {
  const { graph, weights, packed, plan } = readEngine(dir);
  assert.ok(packed.size > 0);
  return new ReferenceBackend().bind(graph, weights, kv, plan, packed);
}

type Runner = { forward(step: StepBatch): Float32Array | Map<string, Float32Array> };
const logitsOf = (r: Runner, step: StepBatch) => {
  const out = r.forward(step);
  return out instanceof Map ? out.get("logits")! : out;
};
const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

/**
 * Scripted ragged steps (prefill chunks and decode over shuffled blocks) compared step by
 * step, then greedy decoding from a short prompt on both: the tokens each picks.
 */
function compare(cuda: Runner, ref: BoundGraph, vocab: number, short = false) {
  const steps = scriptedSteps(short ? [9, 5] : [29, 5, 14], vocab, 16, 8, 16);
  const rel = steps.map((s) => relError(logitsOf(cuda, s), logitsOf(ref, s)));
  const greedy = { cuda: [] as number[], ref: [] as number[] };
  if (!short) {
    for (const [runner, out] of [[cuda, greedy.cuda], [ref, greedy.ref]] as const) {
      const seq = { tokens: [1, 17, 42, 5, 99, 3], table: [7], done: 0 };
      let step = makeStep([seq], [seq.tokens.length], 16);
      for (let i = 0; i < 8; i++) {
        const next = argmax(logitsOf(runner, step));
        out.push(next);
        seq.tokens.push(next);
        step = makeStep([seq], [1], 16);
      }
    }
  }
  return { rel, maxRel: Math.max(...rel), greedy };
}

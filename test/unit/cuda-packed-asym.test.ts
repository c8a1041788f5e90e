/**
 * Asymmetric int4 (a zero point per group: `--int4-asym`, AWQ, GPTQ releases with real
 * zero points) stays packed on the cuda target as i4z: the engine's int4 bytes, f32 scales
 * and one zero-point byte per row and group, copied up as they are (packed-upload.ts,
 * kernels/weights.cuh WI4Z). On the CPU emulator against the reference backend running the
 * same engine: g32 / g64 / g128, a head of 131 rows (not a multiple of the GEMV's 8 rows
 * or the GEMM's 64), steps of 17, 3 and 1 tokens with every row's logits (GEMM, GEMV at
 * M = 3 and 1, for every linear and the head); a bf16 engine on gemv / gemv4 / the
 * tensor-core GEMM; a tiny AWQ checkpoint built for the cuda target (its ragged ffn_down
 * still falls back, with the reason in the log).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeStep, relError } from "../../bench/device/compare.js";
import { bindEngine, buildPackedEngine, kvShape, linearFormats, readEngine } from "../../bench/device/packed-engines.js";
import type { BoundGraph } from "../../src/backends/backend.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import type { CudaBound } from "../../src/backends/cuda/bound.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { cubinFile } from "../../src/backends/cuda/engine-files.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { packedDeviceFormat } from "../../src/backends/cuda/packed-upload.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { expectedTensors } from "../../src/checkpoint/expected-tensors.js";
import { f16ToF32, f32ToF16 } from "../../src/checkpoint/fp16.js";
import { hfConfigJson } from "../../src/checkpoint/hf-config.js";
import { canonicalToHf } from "../../src/checkpoint/hf-names.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeSafetensors, type SafetensorsI32Tensor, type SafetensorsTensor } from "../../src/checkpoint/write-safetensors.js";
import { buildEngineDir } from "../../src/engine/build.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import type { PackedMatrix } from "../../src/quant/packed.js";
import { randomTensors, smallConfig } from "./checkpoint-util.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`cuda asymmetric int4 tests: ${missing}`);

const ELF = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);
const CUBINS = () => new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]));

/** A random Llama whose matmul K (128, 256) every group divides, with a head of 131 rows. */
const ODD = syntheticConfig({ hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 256, vocabSize: 131, numLayers: 2 });
const TOL = { fp32: 2e-5, bf16: 3e-2 }; // the symmetric packed cases' (cuda-packed.test.ts)

/** Steps of 17, 3 and 1 tokens of one sequence, then 1 + 3 tokens of two; every row's logits (the head at M = 17, 3, 1 too). */
function steps(vocab: number): StepBatch[] {
  const a = { tokens: Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % vocab), table: [3, 6], done: 0 };
  const b = { tokens: Array.from({ length: 8 }, (_, i) => (i * 11 + 2) % vocab), table: [1], done: 0 };
  const all = (s: StepBatch): StepBatch => ({ ...s, logitRows: Int32Array.from({ length: s.numTokens }, (_, i) => i) });
  return [makeStep([a], [17], 16), makeStep([a], [3], 16), makeStep([a], [1], 16), makeStep([a, b], [1, 3], 16)].map(all);
}

type Runner = { forward(step: StepBatch): Float32Array | Map<string, Float32Array> };
const logits = (r: Runner, s: StepBatch) => {
  const out = r.forward(s);
  return out instanceof Map ? out.get("logits")! : out;
};

/** Per-step relative logit error of `cuda` against `ref` over the same steps. */
function compareSteps(cuda: Runner, ref: Runner, vocab: number): number[] {
  return steps(vocab).map((s) => relError(logits(cuda, s), logits(ref, s)));
}

/** The int4 linear kernels a cuda binding launches while `fn` runs (its modules' launch trace). */
function int4Kernels<T>(bound: CudaBound, fn: () => T): { result: T; kernels: string[] } {
  const k = (bound as unknown as { k: { trace: ((name: string) => void) | null } }).k;
  const seen = new Set<string>();
  k.trace = (name) => /_i4/.test(name) && seen.add(name);
  try {
    return { result: fn(), kernels: [...seen].sort() };
  } finally {
    k.trace = null;
  }
}

describe("asymmetric int4 on the cuda target (i4z)", () => {
  test("packedDeviceFormat: zero points -> i4z with the group; ragged or unsteppable groups and f16 still fall back, saying why", () => {
    const l = (groupSize: number) => ({ groupSize, asym: true, scale: "f32" as const });
    const zeros = Uint8Array.from([3, 8, 12, 0]);
    for (const g of [32, 64, 128]) assert.deepEqual(packedDeviceFormat({ dtype: "int4", cols: 256, layout: l(g), zeros }, "f32"), { fmt: "i4z", group: g });
    assert.deepEqual(packedDeviceFormat({ dtype: "int4", cols: 64, layout: l(128), zeros }, "bf16"), { fmt: "i4z", group: 64 }); // the row is the group
    assert.match((packedDeviceFormat({ dtype: "int4", cols: 160, layout: l(64), zeros }, "f32") as { why: string }).why, /^ragged last group \(160 columns in groups of 64\)$/);
    assert.match((packedDeviceFormat({ dtype: "int4", cols: 96, layout: l(48), zeros }, "f32") as { why: string }).why, /groups of 48 columns/);
    assert.match((packedDeviceFormat({ dtype: "int4", cols: 256, layout: l(64), zeros }, "f16") as { why: string }).why, /no int4 kernels for f16/);
  });

  describe("on the CPU emulator", { skip: missing ?? false }, () => {
    let root = "";
    before(async () => {
      process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
      root = mkdtempSync(join(tmpdir(), "llmrt-cuda-asym-"));
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    const built = new Map<string, { dir: string; log: string[] }>();
    /** The engine of an asymmetric int4 case, built once. */
    const build = (name: string, groupSize: number, dtype: "fp32" | "bf16") => {
      if (!built.has(name)) {
        const dir = join(root, name);
        built.set(name, { dir, log: buildPackedEngine(syntheticCheckpoint(ODD, 5), dir, { quant: { scheme: "int4-wo", groupSize, asym: true }, dtype }, CUBINS()) });
      }
      return built.get(name)!;
    };
    const bind = (dir: string, o: CudaBackendOptions, lines: string[]) => bindEngine(dir, new CudaBackend({ engineDir: dir, onLog: (l) => lines.push(l), ...o }), kvShape(ODD, 8)) as CudaBound & BoundGraph;

    for (const g of [32, 64, 128]) {
      test(`int4-wo g${g} --int4-asym (fp32 engine): every linear i4z g${g}, nothing dequantized; 17 / 3 / 1-token steps within ${TOL.fp32} of the reference`, (t) => {
        const { dir, log } = build(`g${g}`, g, "fp32");
        const want = `cuda: 9 of 9 packed weights stay packed on the GPU (9 int4 g${g} asym -> i4z g${g})`;
        assert.ok(log.includes(want), log.join("\n"));
        // the engine's zero points are not all 8: ignoring them would be visible
        const packed = [...readEngine(dir).packed.values()];
        assert.ok(packed.every((m) => m.zeros && m.zeros.some((z) => z !== 8)), "every matrix has zero points other than 8");
        const lines: string[] = [];
        const bound = bind(dir, {}, lines);
        try {
          assert.deepEqual(lines, [want]);
          assert.doesNotMatch(lines.join("\n"), /dequantized/);
          assert.deepEqual(new Set(linearFormats(bound)), new Set([`i4z g${g}`]));
          const ref = bindEngine(dir, new ReferenceBackend(), kvShape(ODD, 8));
          const { result: rel, kernels } = int4Kernels(bound, () => compareSteps(bound, ref, ODD.vocabSize));
          assert.deepEqual(kernels, ["gemm_f32_i4z", "gemv_f32_i4z"]);
          t.diagnostic(`relative logit error per step ${rel.map((x) => x.toExponential(2)).join(" ")}`);
          assert.ok(Math.max(...rel) <= TOL.fp32, `relative logit error per step ${rel.map((x) => x.toExponential(2)).join(" ")}`);
        } finally {
          bound.close();
        }
      });
    }

    test(`int4-wo g64 --int4-asym (bf16 engine): gemv, gemv4 and the tensor-core GEMM within ${TOL.bf16} of the reference`, (t) => {
      const { dir } = build("bf16-g64", 64, "bf16");
      const ref = () => bindEngine(dir, new ReferenceBackend(), kvShape(ODD, 8));
      for (const linear of ["auto", "gemv4"] as const) {
        const lines: string[] = [];
        const bound = bind(dir, { linear }, lines);
        try {
          assert.deepEqual(lines, ["cuda: 9 of 9 packed weights stay packed on the GPU (9 int4 g64 asym -> i4z g64)"]);
          const r = ref();
          const { result: rel, kernels } = int4Kernels(bound, () => compareSteps(bound, r, ODD.vocabSize));
          const gemv = linear === "auto" ? "gemv" : "gemv4";
          assert.deepEqual(kernels, [`gemm_tc_bf16_i4z`, `gemm_tc_bf16_i4z_f32out`, `${gemv}_bf16_i4z`, `${gemv}_bf16_i4z_f32out`]);
          t.diagnostic(`linear=${linear}: relative logit error per step ${rel.map((x) => x.toExponential(2)).join(" ")}`);
          assert.ok(Math.max(...rel) <= TOL.bf16, `linear=${linear}: ${rel.map((x) => x.toExponential(2)).join(" ")}`);
        } finally {
          bound.close();
        }
      }
    });

    test("the zero points matter: the same engine with every zero point read as 8 is far outside the tolerance", () => {
      // what a kernel that ignored them would compute (the reference, so this holds on any backend)
      const { graph, weights, packed, plan } = readEngine(build("g64", 64, "fp32").dir);
      const eights = new Map([...packed].map(([n, m]) => [n, { ...m, zeros: new Uint8Array(m.zeros!.length).fill(8) } as PackedMatrix]));
      const kv = kvShape(ODD, 8);
      const rel = compareSteps(new ReferenceBackend().bind(graph, weights, kv, plan, eights), new ReferenceBackend().bind(graph, weights, kv, plan, packed), ODD.vocabSize);
      assert.ok(Math.min(...rel) > 100 * TOL.fp32, `zero points as 8: relative logit error ${rel.map((x) => x.toExponential(2)).join(" ")}`);
    });

    test("an AWQ GEMM checkpoint (g64) built for the cuda target: q/k/v/o/gate/up stay i4z, the ragged ffn_down (K = 160) falls back saying why; logits the reference's", (t) => {
      const config = smallConfig({ hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 160, vocabSize: 131, rope: { theta: 10000, style: "neox", dim: 16, scaling: { type: "none" } } });
      const src = join(root, "awq");
      writeAwqDir(src, config, 64);
      const dir = join(root, "awq-engine");
      const log: string[] = [];
      const ckpt = openCheckpoint(src);
      try {
        buildEngineDir(ckpt, dir, { target: "cuda", dtype: "fp32", maxSeqs: 3, maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64 }, { files: CUBINS(), onLog: (l) => log.push(l) });
      } finally {
        ckpt.close();
      }
      const lines: string[] = [];
      const bound = bindEngine(dir, new CudaBackend({ engineDir: dir, onLog: (l) => lines.push(l) }), kvShape(config, 8)) as CudaBound & BoundGraph;
      try {
        assert.equal(lines.length, 1);
        assert.match(lines[0], /^cuda: (\d+) of (\d+) packed weights stay packed on the GPU \(\d+ int4 g64 asym -> i4z g64\); 2 dequantized at load and stored as f32: 2 int4 g64 asym: ragged last group \(160 columns in groups of 64\) \(blk\.0\.ffn_down\.weight, blk\.1\.ffn_down\.weight\)$/);
        assert.ok(log.some((l) => l === lines[0]), log.join("\n"));
        const formats = new Set(bound.deviceWeights.all().filter((w) => w.role === "linear").map((w) => `${w.name.replace(/blk\.\d+\./, "")} ${w.fmt}`));
        assert.ok([...formats].some((f) => /attn_(qkv|q)\.weight i4z/.test(f)), [...formats].join(", "));
        assert.ok(formats.has("ffn_down.weight f32"), [...formats].join(", "));
        const rel = compareSteps(bound, bindEngine(dir, new ReferenceBackend(), kvShape(config, 8)), config.vocabSize);
        t.diagnostic(`${lines[0]}; relative logit error per step ${rel.map((x) => x.toExponential(2)).join(" ")}`);
        assert.ok(Math.max(...rel) <= TOL.fp32, rel.map((x) => x.toExponential(2)).join(" "));
      } finally {
        bound.close();
      }
    });
  });
});

// ---- a tiny AWQ GEMM writer (as test/unit/checkpoint-awq-gptq.test.ts's, from the format's description) ----

const f16 = (x: number) => f16ToF32(f32ToF16(x));
const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; // nibble i of word j holds output column 8j + AWQ_ORDER[i]

/** [rows, cols] values -> AWQ words [rows, cols / 8], interleaved. */
function awqPack(value: (r: number, c: number) => number, rows: number, cols: number): Int32Array {
  const words = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols / 8; j++) for (let i = 0; i < 8; i++) words[r * (cols / 8) + j] |= value(r, 8 * j + AWQ_ORDER[i]) << (4 * i);
  return words;
}

/** Every linear of random weights quantized min/max per (group, output) with f16 scales, as AutoAWQ does; the rest f32. */
function writeAwqDir(dir: string, config: ModelConfig, gs: number): void {
  const src = randomTensors(config, 3);
  const tensors: (SafetensorsTensor | SafetensorsI32Tensor)[] = [];
  for (const [name, shape] of expectedTensors(config)) {
    const w = src.get(name)!;
    const hf = canonicalToHf(name)!;
    if (!/\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(name)) {
      tensors.push({ name: hf, dtype: "f32", shape, data: w });
      continue;
    }
    const [out, inp] = shape;
    const groups = Math.ceil(inp / gs);
    const q = new Uint8Array(out * inp);
    const zeros = new Int32Array(groups * out);
    const scales = new Float32Array(groups * out);
    for (let g = 0; g < groups; g++) {
      for (let n = 0; n < out; n++) {
        let lo = 0,
          hi = 0;
        for (let k = g * gs; k < Math.min(inp, (g + 1) * gs); k++) (lo = Math.min(lo, w[n * inp + k])), (hi = Math.max(hi, w[n * inp + k]));
        const scale = f16((hi - lo) / 15 || 1);
        const zero = Math.min(15, Math.max(0, Math.round(-lo / scale)));
        scales[g * out + n] = scale;
        zeros[g * out + n] = zero;
        for (let k = g * gs; k < Math.min(inp, (g + 1) * gs); k++) q[n * inp + k] = Math.min(15, Math.max(0, Math.round(w[n * inp + k] / scale) + zero));
      }
    }
    const prefix = hf.slice(0, -".weight".length);
    tensors.push(
      { name: `${prefix}.qweight`, dtype: "i32", shape: [inp, out / 8], data: awqPack((k, n) => q[n * inp + k], inp, out) },
      { name: `${prefix}.qzeros`, dtype: "i32", shape: [groups, out / 8], data: awqPack((g, n) => zeros[g * out + n], groups, out) },
      { name: `${prefix}.scales`, dtype: "f16", shape: [groups, out], data: scales },
    );
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...hfConfigJson(config), torch_dtype: "float16", quantization_config: { quant_method: "awq", bits: 4, group_size: gs, zero_point: true, version: "gemm" } }));
  writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

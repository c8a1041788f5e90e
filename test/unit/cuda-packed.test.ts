/**
 * Packed engine weights on the cuda target: `--quant int8-wo | int4-wo` engines keep their
 * int8 / int4 bytes on the device wherever the layout is a device format (i8 per row,
 * i4 per row and group), and run on the CPU emulator with the reference backend's logits
 * (same engine, same packed weights) and its greedy tokens; so do a GGUF's Q4_0 / Q8_0
 * blocks, which a cuda build keeps (i4 g32, i8 g32); asymmetric int4 keeps its zero
 * points too (i4z; more in cuda-packed-asym.test.ts). A layout that does not map
 * (stories260K's ffn_down, 172 columns in groups of 128) is dequantized at bind, and the
 * bind and build logs say so and why. Cases: bench/device/packed-engines.ts
 * (the device check runs the same ones on a GPU).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { bindEngine, buildPackedEngine, comparePacked, kvShape, linearFormats, PACKED_CASES, PACKED_CONFIG, runPackedCase, type PackedCase } from "../../bench/device/packed-engines.js";
import type { BoundGraph } from "../../src/backends/backend.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import type { CudaBound } from "../../src/backends/cuda/bound.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { cubinFile } from "../../src/backends/cuda/engine-files.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { describeUploads, deviceLabel, packedDeviceFormat } from "../../src/backends/cuda/packed-upload.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint } from "../../src/checkpoint/types.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { syntheticCheckpoint } from "../../src/models/synthetic.js";
import type { PackedLayout } from "../../src/quant/packed.js";
import { fixture } from "../helpers/fixtures.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`cuda packed-weight tests: ${missing}`);

const ELF = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);

const layout = (groupSize: number, asym = false): PackedLayout => ({ groupSize, asym, scale: "f32" });

/** The build log's line on how the GPU will hold each case's packed weights (9: qkv, o, gate|up, down of 2 layers, and the head). */
const kept = (from: string, to: string) => new RegExp(`^cuda: 9 of 9 packed weights stay packed on the GPU \\(9 ${from} -> ${to}\\)$`);
const BUILD_LINES: Record<string, RegExp> = {
  "int8-wo": kept("int8 per-row", "i8"),
  "int4-wo g128": kept("int4 g128", "i4 g128"),
  "int4-wo g32": kept("int4 g32", "i4 g32"),
  "int4-wo g64 bf16": kept("int4 g64", "i4 g64"),
  "int4-wo g64 asym": kept("int4 g64 asym", "i4z g64"),
  "int4-wo g128 asym bf16": kept("int4 g128 asym", "i4z g128"),
  "GGUF Q4_0": kept("int4 g32", "i4 g32"),
  "GGUF Q8_0": kept("int8 g32", "i8 g32"),
};

describe("packed weights on the cuda target", () => {
  test("which packed layouts are a device format, and why the others are not", () => {
    const fmt = (dtype: "int8" | "int4", cols: number, l: PackedLayout, act: "f32" | "bf16" | "f16" = "f32") => packedDeviceFormat({ dtype, cols, layout: l }, act);
    assert.deepEqual(fmt("int8", 256, layout(256)), { fmt: "i8", group: 256 });
    assert.deepEqual(fmt("int8", 256, layout(32)), { fmt: "i8", group: 32 }); // GGUF Q8_0
    assert.match((fmt("int8", 240, layout(24)) as { why: string }).why, /int8 in groups of 24 columns \(the i8 kernels read 16 at a time\)/);
    assert.match((fmt("int8", 80, layout(32)) as { why: string }).why, /ragged last group \(80 columns in groups of 32\)/);
    assert.deepEqual(fmt("int4", 256, layout(128)), { fmt: "i4", group: 128 });
    assert.deepEqual(fmt("int4", 96, layout(32), "bf16"), { fmt: "i4", group: 32 }); // GGUF Q4_0
    assert.deepEqual(fmt("int4", 64, layout(128)), { fmt: "i4", group: 64 }); // one group per row: the row is the group
    assert.match((fmt("int4", 172, layout(128)) as { why: string }).why, /ragged last group \(172 columns in groups of 128\)/);
    assert.match((fmt("int4", 48, layout(128)) as { why: string }).why, /groups of 48 columns/);
    assert.deepEqual(fmt("int4", 256, layout(64, true)), { fmt: "i4z", group: 64 });
    // zero points that are all 8 (a symmetric GPTQ release) are the i4 format (no zero bytes to read); one other is i4z
    const zeros = new Uint8Array(8).fill(8);
    assert.deepEqual(packedDeviceFormat({ dtype: "int4", cols: 256, layout: layout(64, true), zeros }, "bf16"), { fmt: "i4", group: 64 });
    zeros[5] = 7;
    assert.deepEqual(packedDeviceFormat({ dtype: "int4", cols: 256, layout: layout(64, true), zeros }, "bf16"), { fmt: "i4z", group: 64 });
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
    /** Builds a case's engine once (the random Llama unless a checkpoint is given); the engine's cubins are ELF stubs the emulator accepts. */
    const engine = (c: Pick<PackedCase, "name" | "quant" | "dtype">, ckpt: Checkpoint = syntheticCheckpoint(PACKED_CONFIG, 11)) => {
      if (!built.has(c.name)) {
        const dir = join(root, c.name.replace(/\W+/g, "-"));
        built.set(c.name, { dir, log: buildPackedEngine(ckpt, dir, c, new Map(KERNEL_UNITS.map((u) => [cubinFile(u, "sm_90"), ELF]))) });
      }
      return built.get(c.name)!;
    };
    before(async () => {
      process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
      root = mkdtempSync(join(tmpdir(), "llmrt-cuda-packed-"));
    });
    after(() => rmSync(root, { recursive: true, force: true }));

    for (const c of PACKED_CASES) {
      test(`${c.name} (${c.dtype} engine): every linear weight ${c.want} on the device; logits within ${c.tol} of the reference on the same engine, greedy tokens equal`, (t) => {
        const { dir, log } = engine(c);
        assert.match(log.find((l) => l.startsWith("cuda: ")) ?? "", BUILD_LINES[c.name], log.join("\n"));
        const eng = Engine.load(dir, { numBlocks: 8 }); // the CLI's path: the target's backend, load.ts hands it the packed weights
        try {
          const bound = (eng as unknown as { bound: CudaBound }).bound;
          assert.deepEqual(new Set(linearFormats(bound)), new Set([c.want]));
          assert.equal(bound.packedUploads.length, 9);
          const r = comparePacked(eng, bindEngine(dir, new ReferenceBackend(), eng.kv), PACKED_CONFIG.vocabSize);
          t.diagnostic(`max relative logit error ${r.maxRel.toExponential(2)}; greedy ${r.greedy.cuda.join(" ")}`);
          assert.ok(r.maxRel <= c.tol, `max relative logit error ${r.maxRel.toExponential(2)} (per step ${r.rel.map((x) => x.toExponential(1)).join(" ")})`);
          assert.deepEqual(r.greedy.cuda, r.greedy.ref);
        } finally {
          eng.close();
        }
      });
    }

    test("the bind log says an asymmetric int4 engine stays packed (i4z), nothing dequantized; the device check's runner passes", () => {
      const asym = PACKED_CASES.find((c) => c.quant?.asym)!;
      const lines: string[] = [];
      const r = runPackedCase(asym, engine(asym).dir, new CudaBackend({ engineDir: engine(asym).dir, onLog: (l) => lines.push(l) }));
      assert.ok(r.ok, r.detail);
      assert.deepEqual(lines, ["cuda: 9 of 9 packed weights stay packed on the GPU (9 int4 g64 asym -> i4z g64)"]);
    });

    test("stories260K int4-wo g128: K = 64 weights stay i4 (one group of 64 a row), ffn_down (K = 172, ragged) dequantized; logits and greedy tokens the reference's", (t) => {
      const model = fixture(t, "models/stories260K/stories260K.bin");
      if (!model) return;
      const ckpt = openCheckpoint(model);
      let dir: string, log: string[];
      try {
        ({ dir, log } = engine({ name: "stories260K int4-wo g128", quant: { scheme: "int4-wo", groupSize: 128 }, dtype: "fp32" }, ckpt));
      } finally {
        ckpt.close();
      }
      const lines: string[] = [];
      const config = readManifest(dir).model;
      const kv = kvShape(config, 8);
      const bound = bindEngine(dir, new CudaBackend({ engineDir: dir, onLog: (l) => lines.push(l) }), kv) as CudaBound & BoundGraph;
      try {
        const held = `cuda: 15 of 20 packed weights stay packed on the GPU (15 int4 g128 -> i4 g64); 5 dequantized at load and stored as f32: 5 int4 g128: ragged last group (172 columns in groups of 128) (blk.0.ffn_down.weight, blk.1.ffn_down.weight, ...)`;
        assert.deepEqual(lines, [held]);
        assert.ok(log.includes(held), log.join("\n"));
        const formats = bound.deviceWeights.all().filter((w) => w.role === "linear").map((w) => `${w.name.replace(/blk\.\d+\./, "")} ${deviceLabel(w.fmt, w.group, w.cols)}`);
        assert.deepEqual([...new Set(formats)].sort(), ["attn_output.weight i4 g64", "attn_qkv.weight i4 g64", "ffn_down.weight f32", "ffn_gate_up.weight i4 g64"]);
        const r = comparePacked(bound, bindEngine(dir, new ReferenceBackend(), kv), config.vocabSize, 6);
        t.diagnostic(`max relative logit error ${r.maxRel.toExponential(2)}; greedy ${r.greedy.cuda.join(" ")}`);
        assert.ok(r.maxRel <= 2e-5, `max relative logit error ${r.maxRel.toExponential(2)}`);
        assert.deepEqual(r.greedy.cuda, r.greedy.ref);
      } finally {
        bound.close();
      }
    });
  });
});

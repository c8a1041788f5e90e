/**
 * Loading 16-bit weights without a round trip through f32: an fp32 engine keeps a matrix
 * whose values are all exactly bf16 (or fp16) in those 16 bits (engine/weights.ts
 * encodeStored), and the cpu backend takes 16-bit matrices as stored (bind's `halves`), so
 * a bf16 checkpoint no longer loads as 4 bytes a value. Same values, same logits.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HalfWeightMap, KvCacheShape, WeightMap } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { f16ToF32, f32ArrayToBf16, f32ArrayToBf16Exact, f32ArrayToF16, f32ArrayToF16Exact, f32ToF16 } from "../../src/checkpoint/fp16.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { readManifest } from "../../src/engine/format.js";
import { encodeStored, roundTrip } from "../../src/engine/weights.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import type { Checkpoint, TensorDType } from "../../src/checkpoint/types.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { BLOCK_SIZE, VARIANTS, maxRelErr, oneSequenceSteps, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-load16-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("f32ArrayToBf16Exact / f32ArrayToF16Exact: the 16 bits where every value is exact, null otherwise", () => {
  const bf = Float32Array.from([0, -0, 1.5, -3.25 * 2 ** -70, 65280, 2 ** -130]);
  assert.deepEqual([...f32ArrayToBf16Exact(bf)!], [...f32ArrayToBf16(bf)]);
  assert.equal(f32ArrayToBf16Exact(Float32Array.from([1, 1 + 2 ** -10])), null);
  // normals, zeros, subnormal halves, the largest half
  const h = Float32Array.from([0, -0, 1 + 2 ** -10, -2.5, 2 ** -24, -3 * 2 ** -24, 65504, 2 ** -14]);
  const bits = f32ArrayToF16Exact(h)!;
  assert.deepEqual([...bits], [...f32ArrayToF16(h)]);
  assert.deepEqual([...bits].map(f16ToF32), [...h]);
  assert.equal(bits[1], f32ToF16(-0));
  for (const bad of [1 + 2 ** -11, 2 ** -25, 65520, Infinity, NaN]) assert.equal(f32ArrayToF16Exact(Float32Array.from([1, bad])), null, `${bad}`);
});

test("encodeStored: an fp32 engine keeps exactly-16-bit matrices in 16 bits, vectors and other matrices in f32; 16-bit engines as asked", () => {
  const m = roundTrip(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), "bf16");
  assert.equal(encodeStored(m, [8, 8], "fp32").dtype, "bf16");
  assert.equal(encodeStored(m, [64], "fp32").dtype, "f32");
  const h = roundTrip(Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)), "f16");
  assert.equal(encodeStored(h, [8, 8], "fp32").dtype, "f16");
  const f = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
  assert.equal(encodeStored(f, [8, 8], "fp32").dtype, "f32");
  assert.equal(encodeStored(f, [8, 8], "bf16").dtype, "bf16");
  assert.equal(encodeStored(f, [8, 8], "fp16").dtype, "f16");
  const { bytes } = encodeStored(m, [8, 8], "fp32");
  assert.deepEqual([...new Uint16Array(bytes.buffer, bytes.byteOffset, 64)], [...f32ArrayToBf16(m)]);
});

const kvFor = (c: { numLayers: number; numKvHeads: number; headDim: number }): KvCacheShape => ({ numLayers: c.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: c.numKvHeads, headDim: c.headDim });

test("cpu backend: matrices bound as stored 16-bit bits give the logits of the same values bound as f32; fp16 with an infinity goes in as f32", () => {
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const isMatrix = (n: string) => (g.tensors.get(n) as { kind: string; shape?: number[] }).shape?.length === 2;
  for (const dt of ["bf16", "f16"] as const) {
    const weights: WeightMap = new Map([...weightsFor(g, ckpt)].map(([n, v]) => [n, roundTrip(v, isMatrix(n) ? dt : "f32")]));
    const halves: HalfWeightMap = new Map();
    const rest: WeightMap = new Map();
    for (const [n, v] of weights) {
      if (isMatrix(n)) halves.set(n, { dtype: dt, bits: dt === "bf16" ? f32ArrayToBf16(v) : f32ArrayToF16(v) });
      else rest.set(n, v);
    }
    const a = new CpuBackend({ threads: 1 }).bind(g, weights, kvFor(ckpt.config));
    const b = new CpuBackend({ threads: 1 }).bind(g, rest, kvFor(ckpt.config), undefined, undefined, halves);
    try {
      for (const n of halves.keys()) assert.equal(b.packedDType(n), a.packedDType(n), n);
      for (const [i, s] of scenario().entries()) {
        const want = a.forward(s).get("logits")!;
        assert.deepEqual(b.forward(s).get("logits")!, want, `${dt} step ${i}`);
      }
    } finally {
      a.close();
      b.close();
    }
  }
  // an fp16 matrix holding an infinity: the fp16 kernels decode finite halves only
  const name = [...g.tensors].find(([n, d]) => d.kind === "weight" && isMatrix(n))![0];
  const halves: HalfWeightMap = new Map([[name, { dtype: "f16", bits: f32ArrayToF16(Float32Array.from(weightsFor(g, ckpt).get(name)!, (v, i) => (i === 3 ? Infinity : v))) }]]);
  const rest: WeightMap = new Map([...weightsFor(g, ckpt)].filter(([n]) => n !== name));
  const b = new CpuBackend({ threads: 1 }).bind(g, rest, kvFor(ckpt.config), undefined, undefined, halves);
  try {
    assert.equal(b.packedDType(name), "f32");
  } finally {
    b.close();
  }
});

/** A synthetic checkpoint whose matrices read back as bf16 values (as a bf16 file's do). */
function bf16Checkpoint(): Checkpoint {
  const base = syntheticCheckpoint(syntheticConfig({ numLayers: 2, hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, vocabSize: 128 }), 5);
  return { ...base, readF32: (n: string) => (base.info(n).shape.length === 2 ? roundTrip(base.readF32(n), "bf16") : base.readF32(n)), close: () => base.close() };
}

test("an fp32 engine from bf16 weights stores them as bf16 and runs as before: cpu (bits as stored) = reference (widened) = in-memory f32", () => {
  const ckpt = bf16Checkpoint();
  const opts = { maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64, maxSeqs: 1 };
  const dirs = { reference: join(tmp, "bf16-as-fp32-ref"), cpu: join(tmp, "bf16-as-fp32-cpu") };
  for (const [target, dir] of Object.entries(dirs)) {
    buildEngineDir(ckpt, dir, { ...opts, target });
    const m = readManifest(dir);
    assert.equal(m.build.dtype, "fp32");
    const dtypes = new Set(m.weights.tensors.filter((e) => e.shape.length === 2).map((e) => e.dtype));
    assert.deepEqual([...dtypes], ["bf16"], `${target}: every matrix in 16 bits`);
    assert.ok(m.weights.tensors.filter((e) => e.shape.length === 1).every((e) => e.dtype === "f32"), `${target}: vectors in f32`);
  }
  const run = (e: Engine) => {
    try {
      return oneSequenceSteps([1, 5, 9, 17, 33, 65, 2, 7], [6, 1, 1]).map((s) => e.forward(s));
    } finally {
      e.close();
    }
  };
  const sizes = { blockSize: BLOCK_SIZE, numBlocks: 16 };
  const inMemory = run(Engine.fromCheckpoint(ckpt, { ...opts, ...sizes, backend: new ReferenceBackend() }));
  const ref = run(Engine.load(dirs.reference, sizes));
  const cpu = run(Engine.load(dirs.cpu, { ...sizes, backend: new CpuBackend({ threads: 1 }) }));
  assert.deepEqual(ref, inMemory, "the stored bf16 values are the checkpoint's");
  cpu.forEach((c, i) => assert.ok(maxRelErr(c, ref[i]) < 1e-5, `step ${i}: cpu vs reference ${maxRelErr(c, ref[i])}`));
});

test("16-bit GGUF and safetensors files build into fp32 engines read as stored (no f32 on the way): matrices in the file's 16 bits, logits = the in-memory f32 path", () => {
  const config = syntheticConfig({ numLayers: 2, hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, vocabSize: 128 });
  const src = syntheticCheckpoint(config, 9);
  const opts = { maxSeqLen: 64, maxBatchTokens: 64, maxLogitRows: 64, maxSeqs: 1 };
  const sizes = { blockSize: BLOCK_SIZE, numBlocks: 16 };
  const steps = () => oneSequenceSteps([1, 5, 9, 17, 33, 65, 2, 7], [6, 1, 1]);
  const run = (e: Engine) => {
    try {
      return steps().map((s) => e.forward(s));
    } finally {
      e.close();
    }
  };
  const files: [string, TensorDType, string][] = [["gguf", "bf16", join(tmp, "m-bf16.gguf")], ["gguf", "f16", join(tmp, "m-f16.gguf")], ["safetensors", "bf16", join(tmp, "m-bf16-hf")]];
  for (const [format, dtype, path] of files) {
    if (format === "gguf") writeModelGguf(path, config, src, { dtype });
    else writeHfCheckpoint(path, config, src, { dtype: dtype as "bf16" });
    const ckpt = openCheckpoint(path);
    try {
      const b = ckpt.readBits16!(ckpt.tensors().find((t) => t.shape.length === 2)!.name)!;
      assert.equal(b.dtype, dtype);
      const dir = join(tmp, `e-${format}-${dtype}`);
      buildEngineDir(ckpt, dir, opts);
      const m = readManifest(dir);
      assert.deepEqual([...new Set(m.weights.tensors.filter((e) => e.shape.length === 2).map((e) => e.dtype))], [dtype], `${format} ${dtype}: matrices as stored`);
      assert.deepEqual(run(Engine.load(dir, sizes)), run(Engine.fromCheckpoint(ckpt, { ...opts, ...sizes, backend: new ReferenceBackend() })), `${format} ${dtype}`);
    } finally {
      ckpt.close();
    }
  }
});

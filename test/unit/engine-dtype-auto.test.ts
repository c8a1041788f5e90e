/**
 * --dtype auto (the default): resolved once from the checkpoint's matmul weights and the
 * target, and only the resolved dtype reaches engine.json, the cache key and inspect.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { registerChat } from "../../src/cli/chat.js";
import { registerGenerate } from "../../src/cli/generate.js";
import { inspect } from "../../src/cli/inspect.js";
import { registerServe } from "../../src/cli/serve.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint, TensorDType, TensorInfo } from "../../src/checkpoint/types.js";
import { writeHfCheckpoint } from "../../src/checkpoint/write-hf-dir.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { engineCacheKey, ensureCachedEngine } from "../../src/engine/cache.js";
import { readManifest } from "../../src/engine/format.js";
import { linearStorage, resolveBuildOptions, type EngineDType } from "../../src/engine/options.js";
import { OptionError } from "../../src/errors.js";
import { runBuild } from "../helpers/cli.js";
import { fixture } from "../helpers/fixtures.js";
import { variantCheckpoint } from "./graph-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-dtype-auto-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
// hidden 32, ffn 64: every matmul's rows are whole Q8_0 / Q4_0 blocks (K-quants fall back to F16 below 256)
const src = variantCheckpoint({ numKvHeads: 2, intermediateSize: 64, vocabSize: 300 });
const SIZES = { maxBatchTokens: 16, maxSeqs: 2, maxLogitRows: 16, maxSeqLen: 32 };
const TARGETS = ["reference", "cpu", "cuda"] as const;

// K-quant super-blocks take rows of 256
const wide = variantCheckpoint({ numKvHeads: 2, hiddenSize: 256, intermediateSize: 256, vocabSize: 300 });

function gguf(dtype: TensorDType): string {
  const file = join(tmp, `m-${dtype}.gguf`);
  const from = dtype.endsWith("_k") ? wide : src;
  writeModelGguf(file, from.config, from, { dtype, dtypeOf: (name) => (dtype === "q4_k" && name.endsWith("attn_v.weight") ? "q6_k" : undefined) }); // Q4_K_M-like
  return file;
}

function hfDir(dtype: "f32" | "bf16" | "f16"): string {
  const dir = join(tmp, `hf-${dtype}`);
  writeHfCheckpoint(dir, src.config, src, { dtype });
  return dir;
}

function withCheckpoint<T>(path: string, f: (ckpt: Checkpoint) => T): T {
  const ckpt = openCheckpoint(path);
  try {
    return f(ckpt);
  } finally {
    ckpt.close();
  }
}

/** What auto resolves to on each target. */
function autoByTarget(ckpt: Checkpoint): Record<string, EngineDType> {
  return Object.fromEntries(TARGETS.map((target) => [target, resolveBuildOptions(ckpt.config, { target }, ckpt).dtype]));
}

test("auto: fp32 checkpoints stay fp32 on every target", (t) => {
  for (const path of [gguf("f32"), hfDir("f32")]) {
    assert.deepEqual(withCheckpoint(path, autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "fp32" }, path);
  }
  const stories = fixture(t, "models/stories260K/stories260K.bin");
  if (stories) assert.deepEqual(withCheckpoint(stories, autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "fp32" });
});

test("auto: a bf16 / fp16 checkpoint keeps its own 16-bit type on cuda, fp32 on cpu and reference", () => {
  assert.deepEqual(withCheckpoint(hfDir("bf16"), autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "bf16" });
  assert.deepEqual(withCheckpoint(hfDir("f16"), autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "fp16" });
  assert.deepEqual(withCheckpoint(gguf("f16"), autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "fp16" });
});

test("auto: a quantized checkpoint (GGUF blocks, AWQ / GPTQ) is bf16 on cuda", () => {
  for (const dtype of ["q8_0", "q4_0", "q4_k"] as const) {
    assert.deepEqual(withCheckpoint(gguf(dtype), autoByTarget), { reference: "fp32", cpu: "fp32", cuda: "bf16" }, dtype);
  }
  // AWQ / GPTQ linears read as f32 (dequantized) and f16 elsewhere: the packing decides
  const awq = { tensors: (): TensorInfo[] => [{ name: "blk.0.attn_q.weight", dtype: "f32", shape: [32, 32] }], quantMethod: "awq" as const };
  assert.equal(resolveBuildOptions(src.config, { target: "cuda" }, awq).dtype, "bf16");
  assert.equal(resolveBuildOptions(src.config, { target: "cpu" }, awq).dtype, "fp32");
});

test("auto reads the matmul weights by element count; an untied embedding table does not vote", () => {
  const info = (name: string, dtype: TensorDType, rows: number): TensorInfo => ({ name, dtype, shape: [rows, 32] });
  const tensors = [info("token_embd.weight", "f32", 1000), info("blk.0.attn_q.weight", "bf16", 32), info("blk.0.ffn_up.weight", "f16", 64), info("output.weight", "f16", 10), { name: "output_norm.weight", dtype: "f32" as const, shape: [32] }];
  assert.equal(linearStorage({ tensors: () => tensors }), "f16"); // 74 rows of f16 against 32 of bf16
  const tied = tensors.filter((x) => x.name !== "output.weight"); // the embedding is the output matrix then
  assert.equal(linearStorage({ tensors: () => tied }), "f32");
});

test("an explicit dtype wins over the checkpoint; unknown ones are refused naming the choices", () => {
  withCheckpoint(hfDir("bf16"), (ckpt) => {
    assert.equal(resolveBuildOptions(ckpt.config, { target: "cuda", dtype: "fp16" }, ckpt).dtype, "fp16");
    assert.equal(resolveBuildOptions(ckpt.config, { target: "cuda", dtype: "fp32" }, ckpt).dtype, "fp32");
  });
  assert.throws(() => resolveBuildOptions(src.config, { dtype: "fp64" as never }), (e: unknown) => e instanceof OptionError && /--dtype: unknown dtype "fp64"/.test(e.message) && /auto, fp32, fp16, bf16, fp8/.test(e.message));
  assert.throws(() => resolveBuildOptions(src.config, { target: "cpu", dtype: "fp8" }), /fp8 weights run on the cuda target only/);
  assert.throws(() => resolveBuildOptions(src.config, { target: "cuda" }), /resolved from the checkpoint/); // auto on cuda needs the tensors
});

test("the manifest and inspect record the resolved dtype, never auto", async () => {
  const bf16 = hfDir("bf16");
  const m = withCheckpoint(bf16, (ckpt) => buildEngineDir(ckpt, join(tmp, "e-cuda"), { ...SIZES, target: "cuda" }, { files: new Map() }));
  assert.equal(m.build.dtype, "bf16");
  assert.deepEqual(Object.keys(m.report.weightBytes).sort(), ["bf16", "f32"]); // matrices bf16, vectors f32
  const ref = withCheckpoint(bf16, (ckpt) => buildEngineDir(ckpt, join(tmp, "e-ref"), { ...SIZES, dtype: "auto" }));
  assert.equal(ref.build.dtype, "fp32");
  assert.match(await inspect(join(tmp, "e-cuda"), { dtype: "auto" }), /build +dtype bf16, target cuda/);
  assert.match(await inspect(bf16, { dtype: "auto" }), /build +dtype fp32, target reference/);
  await assert.rejects(inspect(bf16, { dtype: "half" }), (e: unknown) => e instanceof OptionError && /choose one of auto, fp32/.test(e.message));
});

test("the cache key uses the resolved dtype: auto and what it resolves to are one entry", () => {
  const cache = join(tmp, "cache");
  withCheckpoint(gguf("f32"), (ckpt) => {
    const old = ensureCachedEngine(ckpt, { ...SIZES, dtype: "fp32" }, {}, cache); // as built under the old default
    const auto = ensureCachedEngine(ckpt, SIZES, {}, cache);
    assert.equal(auto.dir, old.dir);
    assert.equal(auto.built, false);
    assert.equal(auto.manifest.build.dtype, "fp32");
  });
  withCheckpoint(hfDir("bf16"), (ckpt) => {
    const key = (dtype: "auto" | EngineDType) => engineCacheKey(ckpt, resolveBuildOptions(ckpt.config, { ...SIZES, target: "cuda", dtype }, ckpt));
    assert.equal(key("auto"), key("bf16"));
    assert.notEqual(key("auto"), key("fp32"));
  });
});

test("llmrt build --dtype: auto by default, logged as resolved; bad values and --quant auto with another dtype refused", async () => {
  const model = gguf("f16");
  const out = join(tmp, "cli");
  const log = await runBuild("--model", model, "-o", out, "--max-seq-len", "32", "--target", "reference");
  assert.match(log, /\(target reference, dtype fp32 \(auto\), weights /);
  assert.equal(readManifest(out).build.dtype, "fp32");
  await assert.rejects(runBuild("--model", model, "-o", out, "--dtype", "fp64"), (e: unknown) => e instanceof OptionError && /--dtype: unknown dtype "fp64".*choose one of auto, fp32, fp16, bf16, fp8/s.test(e.message));
  await assert.rejects(runBuild("--model", model, "-o", out, "--quant", "auto", "--dtype", "bf16"), /--dtype: --quant auto picks the weight dtype itself/);
});

test("generate, serve and chat take --dtype (default auto) and refuse unknown values before loading anything", async () => {
  for (const [name, register] of [["generate", registerGenerate], ["serve", registerServe], ["chat", registerChat]] as const) {
    const program = new Command().exitOverride();
    register(program);
    const option = program.commands.find((c) => c.name() === name)!.options.find((o) => o.long === "--dtype");
    assert.equal(option?.defaultValue, "auto", name);
    assert.equal(option?.parseArg?.("bf16", undefined), "bf16", name);
    await assert.rejects(program.parseAsync(["node", "llmrt", name, "--dtype", "int3"]), (e: unknown) => e instanceof OptionError && /--dtype: unknown dtype "int3"/.test(e.message), name);
  }
});

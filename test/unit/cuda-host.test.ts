/**
 * Host-side logic of the CUDA backend, no GPU or emulator needed: library discovery,
 * kernel argument packing, CUDA-graph buckets and padding, step metadata layout,
 * attention splits, matmul paths, device memory planning, dtype rules.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MODEL_VARIANTS, caseModel, makeStep } from "../../bench/device/compare.js";
import { encodeArgs, MAX_ARGS } from "../../src/backends/cuda/args.js";
import { chooseSplits, decodeBlocksPerRow, decodeForm, decodeHeadBucket, DIRECT_MAX_SPLITS, MAX_SPLITS, prefillKernelFits } from "../../src/backends/cuda/attention.js";
import { bucketFor, graphBucket, padDecodeStep, planBuckets } from "../../src/backends/cuda/buckets.js";
import { normalizeArch } from "../../src/backends/cuda/compile.js";
import { planDeviceMemory } from "../../src/backends/cuda/device-memory.js";
import { checkKvPair, checkWeightFormat, effectiveCache } from "../../src/backends/cuda/dtypes.js";
import { findLibrary, parseLdconfig, type SearchEnv } from "../../src/backends/cuda/libs.js";
import { linearPath } from "../../src/backends/cuda/linear.js";
import { inferActDType, resolveSettings } from "../../src/backends/cuda/settings.js";
import { layoutStep, packStep, PREFILL_TILE, splitAttention, stepSizes } from "../../src/backends/cuda/step-meta.js";
import { describeWeight, weightFormat, weightRoles } from "../../src/backends/cuda/weights.js";
import { OptionError } from "../../src/errors.js";

function fakeEnv(files: string[], over: Partial<SearchEnv> = {}): SearchEnv {
  const set = new Set(files);
  return { env: {}, exists: (p) => set.has(p), ldconfig: () => "", pythonNvidiaDirs: () => [], list: () => [], ...over };
}

describe("library discovery", () => {
  test("LLMRT_CUDA_LIB_DIR comes first, then LD_LIBRARY_PATH and the standard folders", () => {
    const s = fakeEnv(["/opt/a/libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/ld/libcuda.so"], { env: { LLMRT_CUDA_LIB_DIR: "/nope:/opt/a", LD_LIBRARY_PATH: "/ld" } });
    assert.equal(findLibrary("cuda", s).path, "/opt/a/libcuda.so.1");
    assert.equal(findLibrary("cuda", { ...s, env: { LD_LIBRARY_PATH: "/ld" } }).path, "/ld/libcuda.so");
    assert.equal(findLibrary("cuda", { ...s, env: {} }).path, "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
  });

  test("then ldconfig's cache (64-bit entries), then the lib folders of Python's nvidia packages", () => {
    const ld = "1 libs found in cache\n\tlibnvrtc.so.12 (libc6,x86-64) => /cache/libnvrtc.so.12\n\tlibnvrtc.so.12 (libc6) => /cache32/libnvrtc.so.12\n";
    assert.deepEqual(parseLdconfig(ld).get("libnvrtc.so.12"), ["/cache/libnvrtc.so.12"]);
    const s = fakeEnv(["/cache/libnvrtc.so.12"], { ldconfig: () => ld });
    assert.equal(findLibrary("nvrtc", s).path, "/cache/libnvrtc.so.12");
    const py = fakeEnv(["/site/nvidia/cu13/lib", "/site/nvidia/cu13/lib/libcublasLt.so.13", "/site/nvidia/cublas/lib", "/site/nvidia/cublas/lib/libcublasLt.so.12"], {
      pythonNvidiaDirs: () => ["/site/nvidia"],
      list: () => ["cublas", "cu13"],
    });
    assert.equal(findLibrary("cublasLt", py).path, "/site/nvidia/cublas/lib/libcublasLt.so.12");
  });

  test("a miss lists every place searched", () => {
    const r = findLibrary("cuda", fakeEnv([], { env: { LLMRT_CUDA_LIB_DIR: "/x" } }));
    assert.equal(r.path, null);
    assert.equal(r.searched[0], "/x");
    assert.ok(r.searched.includes("/usr/local/cuda/lib64") && r.searched.includes("ldconfig -p"));
  });
});

describe("kernel arguments", () => {
  test("each value in its 8-byte slot, little-endian, typed as the kernel declares it", () => {
    const v = new DataView(new ArrayBuffer(MAX_ARGS * 8));
    encodeArgs([["ptr", 0x7f0012345678], ["i32", -3], ["f32", 0.5], ["u32", 0xffffffff], ["u64", 2 ** 40]], v);
    assert.equal(v.getBigUint64(0, true), 0x7f0012345678n);
    assert.equal(v.getInt32(8, true), -3);
    assert.equal(v.getFloat32(16, true), 0.5);
    assert.equal(v.getUint32(24, true), 0xffffffff);
    assert.equal(v.getBigUint64(32, true), 2n ** 40n);
    assert.throws(() => encodeArgs([["i32", 2 ** 31]], v), RangeError);
    assert.throws(() => encodeArgs([["ptr", -1]], v), RangeError);
    assert.throws(() => encodeArgs(Array.from({ length: MAX_ARGS + 1 }, () => ["i32", 0] as const), v), RangeError);
  });
});

describe("CUDA-graph buckets", () => {
  test("1, 2, 4, then every 8, capped by the batch and the largest bucket", () => {
    assert.deepEqual(planBuckets({ maxBatch: 64 }), [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]);
    assert.deepEqual(planBuckets({ maxBatch: 5 }), [1, 2, 4, 5]);
    assert.deepEqual(planBuckets({ maxBatch: 1 }), [1]);
    assert.equal(planBuckets({ maxBatch: 1000 }).at(-1), 256);
    assert.equal(bucketFor([1, 2, 4, 8], 3), 4);
    assert.equal(bucketFor([1, 2, 4, 8], 9), null);
  });

  const seqs = () => [0, 1, 2].map((i) => ({ tokens: [1, 2, 3, 4], table: [i * 2, i * 2 + 1], done: 3 }));

  test("pure decode steps with every row's logits qualify; prefill, partial logits or long tables do not", () => {
    const b = planBuckets({ maxBatch: 16 });
    assert.equal(graphBucket(makeStep(seqs(), [1, 1, 1], 16), b, 4), 4);
    assert.equal(graphBucket(makeStep(seqs().map((s) => ({ ...s, done: 0 })), [2, 1, 1], 16), b, 4), null);
    assert.equal(graphBucket(makeStep(seqs(), [1, 1, 1], 16), b, 1), null);
    const s = makeStep(seqs(), [1, 1, 1], 16);
    assert.equal(graphBucket({ ...s, logitRows: Int32Array.of(0, 2) }, b, 4), null);
  });

  test("padding adds rows that write the sink block and leaves the real rows as they were", () => {
    const s = makeStep(seqs(), [1, 1, 1], 16);
    const p = padDecodeStep(s, 4, 99, 16);
    assert.equal(p.numTokens, 4);
    assert.deepEqual([...p.tokenIds.subarray(0, 3)], [...s.tokenIds]);
    assert.deepEqual([...p.slotMapping], [...s.slotMapping, 99 * 16]);
    assert.deepEqual([...p.seqStarts], [0, 1, 2, 3, 4]);
    assert.deepEqual([...p.blockTables[3]], [99]);
    assert.deepEqual([...p.logitRows], [0, 1, 2, 3]);
    assert.equal(p.positions[3], 0);
  });
});

describe("step metadata", () => {
  const step = () =>
    makeStep(
      [
        { tokens: Array.from({ length: 70 }, (_, i) => i), table: [4, 5, 6, 7, 8], done: 0 },
        { tokens: [1, 2, 3], table: [1], done: 2 },
      ],
      [70, 1],
      16,
    );

  test("decode rows to the decode kernel, longer sequences in 64-row tiles (all rows decode without the prefill kernel)", () => {
    const s = step();
    const a = splitAttention(s, true);
    assert.deepEqual([...a.decodeRows], [70]);
    assert.deepEqual([...a.tiles], [0, 0, 0, PREFILL_TILE]);
    assert.equal(a.maxDecodeContext, 3);
    assert.equal(splitAttention(s, false).decodeRows.length, 71);
  });

  test("fields are 64-byte aligned, disjoint, and packed with tables padded to the stride", () => {
    const s = step();
    const a = splitAttention(s, true);
    const L = layoutStep(stepSizes(s, a, 6));
    const starts = Object.values(L.at).sort((x, y) => x - y);
    starts.forEach((o) => assert.equal(o % 16, 0));
    const out = new Int32Array(L.ints).fill(-7);
    packStep(s, a, L, out);
    assert.deepEqual([...out.subarray(L.at.seqStarts, L.at.seqStarts + 3)], [0, 70, 71]);
    assert.deepEqual([...out.subarray(L.at.tables, L.at.tables + 12)], [4, 5, 6, 7, 8, 0, 1, 0, 0, 0, 0, 0]);
    assert.equal(out[L.at.tokenSeq + 69], 0);
    assert.equal(out[L.at.tokenSeq + 70], 1);
    assert.throws(() => packStep(s, a, layoutStep(stepSizes(s, a, 2)), new Int32Array(L.ints)), RangeError);
  });
});

describe("kernel choices", () => {
  test("attention splits fill the GPU only when the rows are few and the contexts long", () => {
    assert.equal(chooseSplits(64, 8, 4096, 132), 1);
    assert.equal(chooseSplits(1, 8, 4096, 132), DIRECT_MAX_SPLITS);
    assert.equal(chooseSplits(1, 8, 300, 132), 2);
    assert.equal(chooseSplits(0, 8, 300, 132), 1);
    // tiled: splits down to one 32-key tile, ~4 blocks an SM, up to MAX_SPLITS (merged in-kernel)
    assert.equal(chooseSplits(1, 8, 4096, 132, "tiled"), MAX_SPLITS);
    assert.equal(chooseSplits(1, 8, 300, 132, "tiled"), 10);
    assert.equal(chooseSplits(64, 8, 4096, 132, "tiled"), 2);
    assert.equal(chooseSplits(64, 12, 4096, 132, "tiled"), 1);
    assert.equal(chooseSplits(65, 1, 4096, 132, "tiled"), 1); // beyond the partial buffers' rows
    assert.equal(decodeForm("tiled", "bf16", "bf16", 128), "tiled");
    assert.equal(decodeForm("tiled", "f32", "f32", 128), "direct");
    assert.equal(decodeForm("staged", "bf16", "fp8", 256), "direct");
    // mma: 16-bit activations, head size 64 or 128, any cache they pair with; 16 query heads a block
    assert.equal(decodeForm("mma", "bf16", "fp8", 128), "mma");
    assert.equal(decodeForm("mma", "f32", "bf16", 128), "direct");
    assert.equal(decodeForm("mma", "f16", "f16", 96), "direct");
    assert.equal(decodeBlocksPerRow({ numHeads: 32, numKvHeads: 2 }, "mma"), 2);
    assert.equal(decodeBlocksPerRow({ numHeads: 32, numKvHeads: 8 }, "mma"), 8);
    assert.equal(chooseSplits(1, 8, 4096, 132, "mma"), MAX_SPLITS);
    assert.equal(chooseSplits(1, 8, 300, 132, "mma"), 5);
    assert.equal(decodeBlocksPerRow({ numHeads: 32, numKvHeads: 8 }), 8);
    assert.equal(decodeBlocksPerRow({ numHeads: 32, numKvHeads: 2 }), 4);
    assert.equal(decodeHeadBucket(8), 64);
    assert.equal(decodeHeadBucket(128), 128);
    assert.throws(() => decodeHeadBucket(256, false), OptionError);
    assert.ok(prefillKernelFits("bf16", 128) && !prefillKernelFits("f32", 128) && !prefillKernelFits("bf16", 96));
  });

  test("matmul paths: GEMV for decode, cuBLASLt for 16-bit prefill, tensor-core GEMM for int8/int4 or without cuBLASLt", () => {
    const c = (act: "f32" | "bf16", lt: boolean, mode: "auto" | "gemm" = "auto") => ({ act, lt: lt ? {} : null, mode });
    assert.equal(linearPath(c("bf16", true), { fmt: "bf16", cols: 4096 }, 1), "gemv");
    assert.equal(linearPath(c("bf16", true), { fmt: "bf16", cols: 4100 }, 1), "cublas");
    assert.equal(linearPath(c("bf16", true), { fmt: "bf16", cols: 4096 }, 64), "cublas");
    assert.equal(linearPath(c("bf16", true), { fmt: "fp8", cols: 4096 }, 64), "cublas_fp8");
    assert.equal(linearPath(c("bf16", true), { fmt: "i4", cols: 4096 }, 64), "gemm_tc");
    assert.equal(linearPath(c("bf16", false), { fmt: "bf16", cols: 4096 }, 64), "gemm_tc");
    assert.equal(linearPath(c("bf16", true, "gemm"), { fmt: "bf16", cols: 4096 }, 64), "gemm_tc");
    assert.equal(linearPath(c("f32", false), { fmt: "f32", cols: 64 }, 64), "gemm_f32");
  });
});

describe("device memory", () => {
  const base = { freeBytes: 10e9, weightBytes: 2e9, arenaBytes: 1e8, scratchBytes: 1e8, kvBytesPerBlock: 1e6, requestedBlocks: 100, kvBlocks: "requested" as const };
  test("the requested blocks, or as many as fit in 90% of free memory", () => {
    assert.equal(planDeviceMemory(base).numBlocks, 100);
    const fill = planDeviceMemory({ ...base, kvBlocks: "fill" });
    assert.equal(fill.numBlocks, Math.floor((9e9 - 2.2e9 - 1e6) / 1e6));
    assert.ok(fill.totalBytes <= 9e9);
  });
  test("a plan that does not fit says so, with the sizes and what to lower", () => {
    assert.throws(() => planDeviceMemory({ ...base, requestedBlocks: 10_000 }), (e: Error) => e instanceof OptionError && /needs .* but/.test(e.message) && /--max-seqs/.test(e.message));
  });
});

describe("dtypes and settings", () => {
  test("normalizes GPU architectures and refuses others", () => {
    assert.equal(normalizeArch("90"), "sm_90");
    assert.equal(normalizeArch("sm_90a"), "sm_90a");
    assert.equal(normalizeArch("compute_80"), "sm_80");
    assert.throws(() => normalizeArch("hopper"));
  });

  test("KV and weight formats: supported pairs, 16-bit engines keep a 16-bit cache", () => {
    assert.equal(effectiveCache("bf16", "f32"), "bf16");
    assert.equal(effectiveCache("f32", "bf16"), "bf16");
    checkKvPair("bf16", "fp8");
    assert.throws(() => checkKvPair("f32", "fp8"), OptionError);
    checkWeightFormat("bf16", "i4");
    checkWeightFormat("f32", "i8"); // fp32 --quant engines keep their packed weights
    assert.throws(() => checkWeightFormat("f32", "fp8"), OptionError);
    assert.throws(() => checkWeightFormat("f16", "i4"), OptionError);
    assert.throws(() => checkWeightFormat("f16", "fp8"), OptionError);
  });

  test("weight roles and formats: a tied head stays a table; int4 needs whole groups", () => {
    const { plan } = caseModel({ name: "t", config: MODEL_VARIANTS.mqa_tied, dtype: "bf16", tol: 0 }, 16);
    const roles = weightRoles(plan.graph);
    assert.equal(roles.get("token_embd.weight"), "table");
    assert.ok([...roles.values()].includes("linear") && [...roles.values()].includes("vector"));
    const p = { act: "bf16" as const, linear: "i4" as const, int4Group: 128 };
    assert.equal(weightFormat("linear", [64, 256], p), "i4");
    assert.equal(weightFormat("linear", [64, 96], p), "i8");
    assert.equal(weightFormat("table", [64, 256], p), "bf16");
    assert.equal(describeWeight("w", [64, 256], "linear", "i4", 128).bytes, 64 * 128 + 4 * 64 * 2);
    // i4z: the same plus one zero-point byte per row and group
    assert.equal(weightFormat("linear", [64, 256], { ...p, linear: "i4z" }), "i4z");
    assert.equal(weightFormat("linear", [64, 96], { ...p, linear: "i4z" }), "i8");
    assert.equal(describeWeight("w", [64, 256], "linear", "i4z", 128).bytes, 64 * 128 + 4 * 64 * 2 + 64 * 2);
    checkWeightFormat("f32", "i4z");
    assert.throws(() => checkWeightFormat("f16", "i4z"), OptionError);
  });

  test("the activation type follows the stored weights; dummy loading defaults to bf16", () => {
    const bf = caseModel({ name: "b", config: MODEL_VARIANTS.llama_gqa, dtype: "bf16", tol: 0 }, 16);
    const hf = caseModel({ name: "h", config: MODEL_VARIANTS.llama_gqa, dtype: "fp16", tol: 0 }, 16);
    const f = caseModel({ name: "f", config: MODEL_VARIANTS.llama_gqa, dtype: "fp32", tol: 0 }, 16);
    assert.equal(inferActDType(bf.plan.graph, bf.weights), "bf16");
    assert.equal(inferActDType(hf.plan.graph, hf.weights), "f16");
    assert.equal(inferActDType(f.plan.graph, f.weights), "f32");
    // a --quant engine's matmul weights arrive packed, not in the float map: the embedding table says
    const matmuls = new Set(f.plan.graph.ops.flatMap((o) => (o.op === "matmul" ? [o.w] : [])));
    const floatOnly = (w: Map<string, Float32Array>) => new Map([...w].filter(([n]) => !matmuls.has(n)));
    assert.equal(inferActDType(f.plan.graph, floatOnly(f.weights)), "f32");
    assert.equal(inferActDType(bf.plan.graph, floatOnly(bf.weights)), "bf16");
    const s = resolveSettings({ loadFormat: "dummy" }, f.plan.graph, new Map(), undefined, 16, [9, 0]);
    assert.equal(s.act, "bf16");
    assert.equal(s.cache, "bf16");
    assert.ok(s.graphs && s.dummy && s.graphTableStride === 256);
    assert.throws(() => resolveSettings({ kvDtype: "fp8" }, bf.plan.graph, bf.weights, undefined, 16, [8, 0]), OptionError);
  });
});

/**
 * The CUDA backend end to end on the CPU emulator (src/backends/cuda/emu): every kernel,
 * the argument packing, step metadata, memory layout and CUDA-graph replay, against the
 * reference backend on random-weight models of every variant. Needs a C++ compiler and
 * the CUDA headers (the nvcc toolkit): skipped without them, failing under CI=true.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { compareCase, MODEL_VARIANTS, type CompareCase } from "../../bench/device/compare.js";
import { CudaBackend } from "../../src/backends/cuda/backend.js";
import { AUTO_DECODE_FORMS } from "../../src/backends/cuda/bound.js";
import { decodeForm } from "../../src/backends/cuda/attention.js";
import { KernelModules } from "../../src/backends/cuda/modules.js";
import { DeviceSelect, selectSplits } from "../../src/backends/cuda/select.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { buildEmulator, emulatorUnavailable } from "../../src/backends/cuda/emu/build-emu.js";
import { KERNEL_UNITS } from "../../src/backends/cuda/kernel-sources.js";
import { allKernelNames } from "../../src/backends/cuda/kernel-names.js";
import { caseModel, makeStep } from "../../bench/device/compare.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";

const missing = emulatorUnavailable();
if (missing && process.env.CI === "true") throw new Error(`cuda emulator tests: ${missing}`);

/** The emulator ignores module images beyond their ELF magic: no nvcc run needed. */
const FAKE_CUBINS = new Map(KERNEL_UNITS.map((u) => [u, Uint8Array.from([0x7f, 0x45, 0x4c, 0x46])]));

function backend(o: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend({ cubins: FAKE_CUBINS, ...o });
}

function check(c: CompareCase, o: CudaBackendOptions = {}) {
  const r = compareCase(c, backend(o));
  assert.ok(r.ok, `${c.name}: max relative error ${r.maxRel.toExponential(2)} > ${c.tol} (per step: ${r.rel.map((x) => x.toExponential(1)).join(" ")})`);
  return r;
}

describe("cuda backend on the CPU emulator", { skip: missing ?? false }, () => {
  before(async () => {
    process.env.LLMRT_CUDA_LIB_DIR = await buildEmulator();
  });

  test("every kernel name the dispatch can build exists in the kernel units", () => {
    const k = backend().modules();
    const missing = allKernelNames().filter((n) => !k.has(n));
    assert.deepEqual(missing, []);
  });

  test("greedy and top-k on the device pick the reference logits' best tokens", () => {
    const { config, plan, weights } = caseModel({ name: "g", config: MODEL_VARIANTS.llama_gqa, dtype: "fp32", tol: 0 }, 64);
    const kv = { numLayers: config.numLayers, numBlocks: 8, blockSize: 16, numKvHeads: config.numKvHeads, headDim: config.headDim };
    const seqs = [{ tokens: [1, 5, 9, 3, 7], table: [2], done: 0 }, { tokens: [4, 4, 8], table: [5], done: 0 }];
    const step = makeStep(seqs, [5, 3], 16);
    const ref = new ReferenceBackend().bind(plan.graph, weights, kv, plan.memory).forward(step).get("logits")!;
    const dev = backend().bind(plan.graph, weights, kv, plan.memory);
    const V = config.vocabSize;
    const order = (r: number) => [...ref.subarray(r * V, (r + 1) * V)].map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const greedy = dev.forwardTopK(makeStep(seqs.map((s) => ({ ...s, done: 0 })), [5, 3], 16), 1);
    assert.deepEqual([...greedy.ids], [0, 1].map((r) => order(r)[0][1]));
    const top = dev.forwardTopK(makeStep(seqs.map((s) => ({ ...s, done: 0 })), [5, 3], 16), 4);
    assert.deepEqual([...top.ids], [0, 1].flatMap((r) => order(r).slice(0, 4).map((x) => x[1])));
    top.values.forEach((v, i) => assert.ok(Math.abs(v - order(Math.floor(i / 4))[i % 4][0]) < 1e-4));
    // a NaN in the head's weights makes every logits row hold a NaN: greedy reports -1, not a token
    const head = plan.graph.ops.find((o) => o.op === "matmul" && o.out === "logits");
    assert.ok(head && head.op === "matmul");
    const poisoned = new Map(weights);
    const w = Float32Array.from(weights.get(head.w)!);
    w[3] = NaN;
    poisoned.set(head.w, w);
    const bad = backend().bind(plan.graph, poisoned, kv, plan.memory).forwardTopK(makeStep(seqs.map((s) => ({ ...s, done: 0 })), [5, 3], 16), 1);
    assert.deepEqual([...bad.ids], [-1, -1]);
  });

  test("argmax and top-k split over chunks of a row equal a host sort (ties to the lower id, NaN rows, chunks shorter than k)", () => {
    const k = backend().modules();
    const d = k.driver;
    const rand = (() => {
      let x = 7;
      return () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
    })();
    const best = (row: Float32Array, n: number) =>
      [...row].map((v, i) => [v, i]).filter(([v]) => !Number.isNaN(v)).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, n);
    for (const [V, chunk, topK] of [[1000, 64, 5], [10, 3, 6], [300, 4096, 3], [4099, 100, 40]] as const) {
      const R = 4;
      // values on a coarse grid, so ties across chunks are common
      const logits = Float32Array.from({ length: R * V }, () => Math.floor(rand() * 50) / 4);
      logits[1 * V + V - 1] = NaN; // row 1: a NaN in the last chunk
      logits.fill(-Infinity, 2 * V, 3 * V); // row 2: nothing above -Infinity
      logits[3 * V + 5] = 99, logits[3 * V + V - 2] = 99; // row 3: the best tied in the first and last chunks
      const dev = d.alloc(4 * R * V);
      d.htod(dev, logits);
      const sel = new DeviceSelect(d, k, chunk);
      try {
        for (let rep = 0; rep < 2; rep++) { // twice: the per-row counters are back at zero after a launch
          const out = sel.launch(dev, R, V, 1);
          const ids = new Int32Array(R);
          d.dtoh(ids, out.ids);
          const want = [0, 1, 2, 3].map((r) => (r === 1 || r === 2 ? -1 : best(logits.subarray(r * V, (r + 1) * V), 1)[0][1]));
          assert.deepEqual([...ids], want, `argmax V ${V} chunk ${chunk}`);
          if (V > 5) assert.equal(ids[3], 5);
          d.memset32(out.ids, 12345, R); // the next launch must write every row again
        }
        const top = sel.launch(dev, R, V, topK);
        const ids = new Int32Array(R * topK);
        const vals = new Float32Array(R * topK);
        d.dtoh(ids, top.ids), d.dtoh(vals, top.values);
        for (const r of [0, 3]) {
          const want = best(logits.subarray(r * V, (r + 1) * V), topK);
          assert.deepEqual([...ids.subarray(r * topK, (r + 1) * topK)], want.map((x) => x[1]), `top-${topK} ids, row ${r}, V ${V} chunk ${chunk}`);
          assert.deepEqual([...vals.subarray(r * topK, (r + 1) * topK)], want.map((x) => x[0]));
        }
      } finally {
        sel.dispose();
        d.free(dev);
      }
    }
    assert.deepEqual(selectSplits(128256), { P: 63, chunk: 2036 });
    assert.deepEqual(selectSplits(300), { P: 1, chunk: 300 });
  });

  test("copyBlock copies a block's K and V in every layer (copy-on-write), as the reference does", () => {
    const { config, plan, weights } = caseModel({ name: "c", config: MODEL_VARIANTS.llama_gqa, dtype: "fp32", tol: 0 }, 64);
    const kv = { numLayers: config.numLayers, numBlocks: 8, blockSize: 16, numKvHeads: config.numKvHeads, headDim: config.headDim };
    const ref = new ReferenceBackend().bind(plan.graph, weights, kv, plan.memory);
    const dev = backend().bind(plan.graph, weights, kv, plan.memory);
    const prompt = Array.from({ length: 20 }, (_, i) => (i * 13) % config.vocabSize);
    for (const b of [ref, dev]) {
      b.forward(makeStep([{ tokens: prompt, table: [1, 2], done: 0 }], [20], 16));
      b.copyBlock(1, 6);
    }
    // a fork that shares block 1's copy (6) and continues in its own block 3
    const fork = () => makeStep([{ tokens: [...prompt.slice(0, 16), 7, 8, 9], table: [6, 3], done: 16 }], [3], 16);
    const r = ref.forward(fork()).get("logits")!;
    const d = dev.forward(fork()).get("logits")!;
    assert.ok(r.every((v, i) => Math.abs(v - d[i]) <= 1e-4 * Math.max(1, Math.abs(v))));
  });

  for (const [name, config] of Object.entries(MODEL_VARIANTS)) {
    test(`${name}, f32: logits equal the reference's (CUDA graphs on)`, () => {
      check({ name, config, dtype: "fp32", tol: 2e-5 });
    });
  }

  test("f32 without CUDA graphs, decode kernel only, a bf16 KV cache", () => {
    check({ name: "llama_gqa", config: MODEL_VARIANTS.llama_gqa, dtype: "fp32", kvDtype: "bf16", tol: 1e-2 }, { cudaGraphs: false, decodeAttentionOnly: true });
  });

  test("bf16: tensor-core prefill attention and GEMM within bf16 error; equal to the decode-kernel path", () => {
    const c: CompareCase = { name: "llama_gqa", config: MODEL_VARIANTS.llama_gqa, dtype: "bf16", tol: 3e-2 };
    const mma = check(c, { linear: "gemm" });
    const plain = check(c, { linear: "gemm", decodeAttentionOnly: true });
    assert.ok(mma.argmaxAgree > 0.9 && plain.argmaxAgree > 0.9);
  });

  test("bf16 with a sliding window (an f32 KV request is stored as bf16)", () => {
    check({ name: "mistral_window", config: MODEL_VARIANTS.mistral_window, dtype: "bf16", kvDtype: "f32", tol: 3e-2 });
  });

  for (const [fmt, tol] of [["i8", 5e-2], ["i4", 0.3], ["i4z", 0.3], ["fp8", 0.1]] as const) {
    test(`weight-only ${fmt}: GEMV and tensor-core GEMM read the same weights`, () => {
      const c: CompareCase = { name: "llama_gqa", config: MODEL_VARIANTS.llama_gqa, dtype: "bf16", tol };
      const gemv = compareCase(c, backend({ weightFormat: fmt, linear: "gemv" }));
      const gemv4 = compareCase(c, backend({ weightFormat: fmt, linear: "gemv4" }));
      const gemm = compareCase(c, backend({ weightFormat: fmt, linear: "gemm" }));
      assert.ok(gemv.ok && gemv4.ok && gemm.ok, `${fmt}: ${gemv.maxRel} / ${gemv4.maxRel} / ${gemm.maxRel} > ${tol}`);
    });
  }

  test("staged-V decode attention (bf16, fp8 KV, f32 with a bf16 KV) equals the reference, prefill rows included", () => {
    // [activations, KV cache asked of the reference, of the cuda backend, tolerance]
    const cases = [["bf16", undefined, undefined, 3e-2], ["bf16", undefined, "fp8", 8e-2], ["fp32", "bf16", undefined, 1e-2]] as const;
    for (const [dtype, refKv, cudaKv, tol] of cases) {
      const c: CompareCase = { name: "llama_gqa", config: MODEL_VARIANTS.llama_gqa, dtype, kvDtype: refKv, tol };
      const staged = check(c, { decodeAttention: "staged", decodeAttentionOnly: true, kvDtype: cudaKv });
      const direct = check(c, { decodeAttention: "direct", decodeAttentionOnly: true, kvDtype: cudaKv });
      assert.ok(Math.abs(staged.maxRel - direct.maxRel) < tol / 4, `${dtype}/${cudaKv ?? refKv}: staged ${staged.maxRel} vs direct ${direct.maxRel}`);
    }
  });

  test("tiled decode attention (split over KV, merged by the last block) equals the reference, prefill rows included", () => {
    // contexts of up to 130 positions: several 32-key tiles a split and 2-3 splits a row on the emulator's 4 SMs
    const lengths = [130, 40, 9];
    const wide = { hiddenSize: 256, numHeads: 2, numKvHeads: 1, intermediateSize: 192, vocabSize: 150 }; // head size 128
    const group16 = { hiddenSize: 256, numHeads: 16, numKvHeads: 1, intermediateSize: 192, vocabSize: 150 }; // two head chunks of 8
    // [model, activations, KV cache asked of the reference, of the cuda backend, tolerance]
    const cases = [
      [MODEL_VARIANTS.llama_gqa, "bf16", undefined, undefined, 3e-2],
      [MODEL_VARIANTS.llama_gqa, "bf16", undefined, "fp8", 8e-2],
      [MODEL_VARIANTS.llama_gqa, "fp32", "bf16", undefined, 1e-2],
      [MODEL_VARIANTS.mistral_window, "bf16", undefined, undefined, 3e-2],
      [wide, "bf16", undefined, undefined, 3e-2],
      [group16, "fp16", undefined, undefined, 1e-2],
    ] as const;
    for (const [i, [config, dtype, refKv, cudaKv, tol]] of cases.entries()) {
      const c: CompareCase = { name: `tiled ${dtype}`, config, dtype, kvDtype: refKv, tol, lengths: [...lengths], chunk: 32 };
      for (const cudaGraphs of i === 0 ? [true, false] : [true]) {
        const tiled = check(c, { decodeAttention: "tiled", decodeAttentionOnly: true, kvDtype: cudaKv, cudaGraphs });
        const direct = check(c, { decodeAttention: "direct", decodeAttentionOnly: true, kvDtype: cudaKv, cudaGraphs });
        assert.ok(Math.abs(tiled.maxRel - direct.maxRel) < tol / 4, `${dtype}/${cudaKv ?? refKv}: tiled ${tiled.maxRel} vs direct ${direct.maxRel}`);
      }
    }
  });

  test("tensor-core decode attention (mma: a KV head's query heads as mma rows) equals the reference and the direct form", () => {
    const launched = new Map<string, number>();
    const plain = KernelModules.prototype.launch;
    KernelModules.prototype.launch = function (this: KernelModules, name, ...rest) {
      if (name.startsWith("attn_decode_mma_")) launched.set(name, (launched.get(name) ?? 0) + 1);
      return plain.call(this, name, ...rest);
    };
    try {
      const lengths = [150, 40, 9]; // 64-key tiles: several a split, 2-3 splits a row on the emulator's 4 SMs
      const d64 = (heads: number, kv: number) => ({ hiddenSize: 64 * heads, numHeads: heads, numKvHeads: kv, intermediateSize: 128, vocabSize: 150 });
      // [model, activations, KV cache of the cuda backend, tolerance]
      const cases = [
        [d64(4, 2), "bf16", undefined, 3e-2], // group 2, head size 64
        [{ hiddenSize: 256, numHeads: 2, numKvHeads: 1, intermediateSize: 192, vocabSize: 150 }, "bf16", "fp8", 8e-2], // head size 128, fp8 KV
        [d64(8, 1), "fp16", undefined, 1e-2], // group 8, as TinyLlama
        [d64(20, 1), "bf16", undefined, 3e-2], // group 20: a chunk of 16 heads and one of 4
        [MODEL_VARIANTS.mistral_window, "bf16", undefined, 3e-2], // sliding window, head size 64
      ] as const;
      for (const [config, dtype, cudaKv, tol] of cases) {
        const c: CompareCase = { name: `mma ${dtype}`, config, dtype, tol, lengths: [...lengths], chunk: 32 };
        const mma = check(c, { decodeAttention: "mma", decodeAttentionOnly: true, kvDtype: cudaKv });
        const direct = check(c, { decodeAttention: "direct", decodeAttentionOnly: true, kvDtype: cudaKv });
        assert.ok(Math.abs(mma.maxRel - direct.maxRel) < tol / 4, `${dtype}/${cudaKv}: mma ${mma.maxRel} vs direct ${direct.maxRel}`);
      }
    } finally {
      KernelModules.prototype.launch = plain;
    }
    for (const k of ["attn_decode_mma_bf16_d64", "attn_decode_mma_bf16_fp8_d128", "attn_decode_mma_f16_d64"]) assert.ok(launched.get(k), `${k} never ran`);
  });

  test("programmatic dependent launch: the step's kernels through cuLaunchKernelEx give the reference's logits", () => {
    const c: CompareCase = { name: "llama_gqa", config: MODEL_VARIANTS.llama_gqa, dtype: "bf16", tol: 3e-2, lengths: [70, 20, 9], chunk: 32 };
    const driver = backend().modules().driver;
    const plain = driver.launchOverlapped;
    const count = (o: CudaBackendOptions) => {
      let n = 0;
      driver.launchOverlapped = (...a: Parameters<typeof plain>) => (n++, plain.apply(driver, a));
      try {
        // the emulator's cuLaunchKernelEx reads grid, block, stream and the attribute from the config: a wrong layout fails the logits
        assert.ok(check(c, o).argmaxAgree > 0.9);
      } finally {
        driver.launchOverlapped = plain;
      }
      return n;
    };
    assert.ok(driver.canOverlapLaunches);
    for (const cudaGraphs of [true, false]) assert.ok(count({ pdl: true, cudaGraphs, decodeAttention: "tiled" }) > 50, "kernels were not launched overlapped");
    assert.equal(count({ pdl: false }), 0);
    if (process.env.LLMRT_CUDA_PDL === undefined) {
      // "auto": only the graph-captured decode steps of up to PDL_AUTO_ROWS rows (two of this case's steps: 3 rows, 1 token each)
      assert.equal(count({ cudaGraphs: false }), 0);
      const auto = count({ cudaGraphs: true });
      assert.ok(auto > 0 && auto < count({ pdl: true, cudaGraphs: true }), `auto: ${auto} launches overlapped`);
    }
  });

  test("bf16: split-K GEMV, and the tactics timed at bind, give the reference's logits", () => {
    const c: CompareCase = { name: "qwen2_bias", config: MODEL_VARIANTS.qwen2_bias, dtype: "bf16", tol: 3e-2 };
    check(c, { linear: "gemv4" });
    check(c, { autotune: true, autotuneReps: 1 });
    const { config, plan, weights } = caseModel(c, 64);
    const kv = { numLayers: config.numLayers, numBlocks: 72, blockSize: 16, numKvHeads: config.numKvHeads, headDim: config.headDim };
    const bound = backend({ autotune: true, autotuneReps: 1 }).bind(plan.graph, weights, kv, plan.memory);
    // one row per distinct linear shape, each with a pick per row-count bucket
    const shapes = new Set(plan.graph.ops.flatMap((o) => (o.op === "matmul" ? [o.w] : [])).map((w) => bound.deviceWeights.get(w)).map((w) => `${w.rows}x${w.cols}`));
    assert.equal(new Set(bound.tactics.rows.map((r) => r.shape.split(" ")[0])).size, shapes.size);
    for (const r of bound.tactics.rows) assert.equal(r.chosen.length, 4, r.shape);
    for (const r of bound.tactics.rows) assert.deepEqual(Object.keys(r.us).sort(), ["cublas", "gemm", "gemv", "gemv4"], r.shape);
    // every form the bind may pick that exists for these types and head size was timed at 1 row and at the larger size
    const big = Math.min(64, plan.memory.capacity.T, plan.memory.capacity.R);
    const forms = AUTO_DECODE_FORMS.filter((v) => decodeForm(v, "bf16", "bf16", config.headDim) === v);
    assert.ok(forms.includes("mma") && forms.includes("tiled"), forms.join());
    assert.deepEqual(Object.keys(bound.attnPick.us).sort(), forms.flatMap((v) => [`${v}@1`, `${v}@${big}`]).sort());
    bound.dispose();
  });
});

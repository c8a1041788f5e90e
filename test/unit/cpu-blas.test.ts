/**
 * The CPU backend's BLAS path (blas.ts, blas-matmul.ts) against the reference matmul on
 * random inputs, odd sizes and every float weight dtype, widened blocks with a ragged
 * last one; whole graphs with every matmul forced through BLAS against the reference
 * backend; and LLMRT_BLAS's choices. OpenBLAS is a system library: CI installs it
 * (.ci/run), so under CI=true its absence fails these tests; elsewhere they skip.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BlasError, systemBlas, type Blas } from "../../src/backends/cpu/blas.js";
import { BlasMatmul } from "../../src/backends/cpu/blas-matmul.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { packWeight, type WeightDType } from "../../src/backends/cpu/layout.js";
import { placePacked } from "../../src/backends/cpu/packed.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import { dequantize, type PackedMatrix } from "../../src/quant/packed.js";
import { matmulW8A8 } from "../../src/quant/w8a8.js";
import { quantize } from "../../src/quant/quantize.js";
import type { WeightSlot } from "../../src/backends/cpu/tensors.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { matmul as refMatmul } from "../../src/backends/reference/ops.js";
import { roundTrip } from "../../src/engine/weights.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { planMemory } from "../../src/graph/passes/plan-memory.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { assertClose, randomF32 } from "./cpu-util.js";
import { BLOCK_SIZE, VARIANTS, maxRelErr, oneSequenceSteps, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

const blasModule = fileURLToPath(new URL("../../src/backends/cpu/blas.ts", import.meta.url));

function blasOrSkip(t: TestContext): Blas | null {
  const blas = systemBlas({ LLMRT_BLAS: "auto" });
  if (blas) return blas;
  const msg = "no OpenBLAS library found (Debian: apt-get install libopenblas0); the BLAS path is untested here";
  if (process.env.CI === "true") throw new Error(msg);
  t.skip(msg);
  return null;
}

/** A weight placed in the runtime's heap as the backend would place it. */
function place(rt: CpuRuntime, values: Float32Array, N: number, K: number, dtype: WeightDType): WeightSlot {
  const p = packWeight(values, [N, K], dtype);
  const ptr = rt.heap.alloc(p.bytes.byteLength);
  rt.heap.u8(ptr, p.bytes.byteLength).set(p.bytes);
  return { ptr, dtype, shape: [N, K], bytes: p.bytes.byteLength };
}

test("BLAS matmul = reference matmul: f32 / bf16 / fp16 weights, odd sizes, bias, ragged widened blocks", (t) => {
  const blas = blasOrSkip(t);
  if (!blas) return;
  const rt = new CpuRuntime({ threads: 2 });
  try {
    let seed = 1;
    for (const dtype of ["f32", "bf16", "f16"] as const) {
      for (const [M, K, N] of [[1, 5, 7], [7, 33, 1], [33, 300, 61], [16, 64, 4095], [5, 1, 3]]) {
        for (const withBias of [false, true]) {
          const mark = rt.heap.mark();
          const w = roundTrip(randomF32(N * K, seed++, 0.5), dtype);
          const x = randomF32(M * K, seed++);
          const bias = withBias ? randomF32(N, seed++) : undefined;
          const slot = place(rt, w, N, K, dtype);
          // the widening buffer is sized by the widest 16-bit weight (here one of 2K + 1 columns, 3 of
          // its rows), so this weight's blocks hold a whole number of rows, and the last one is ragged
          const wider = dtype === "f32" ? [] : [place(rt, roundTrip(randomF32(2 * (2 * K + 1), seed++), dtype), 2, 2 * K + 1, dtype)];
          const mm = new BlasMatmul(blas, rt, [slot, ...wider], { blockBytes: 3 * (2 * K + 1) * 4, minRows: 1, minRows16: 1 });
          assert.ok(mm.takes(slot, M));
          const xp = rt.heap.alloc(M * K * 4);
          const op = rt.heap.alloc(M * N * 4);
          rt.heap.f32(xp, M * K).set(x);
          rt.heap.f32(op, M * N).fill(NaN); // beta = 0 must not read what was there
          mm.run(slot, rt.heap.f32(xp, M * K), rt.heap.f32(op, M * N), bias, M, 2);
          const want = new Float32Array(M * N);
          refMatmul(want, x, w, bias, M, K, N);
          assertClose(rt.heap.f32(op, M * N), want, 2e-6 * Math.sqrt(K), `${dtype} [${M}, ${K}] x [${N}, ${K}]^T${withBias ? " + bias" : ""}`);
          rt.heap.release(mark);
        }
      }
    }
  } finally {
    rt.close();
  }
});

test("BLAS matmul = reference matmul on packed int8 / int4 weights (sym / asym, groups 32 / 64 / ragged / one per row, both q layouts)", (t) => {
  const blas = blasOrSkip(t);
  if (!blas) return;
  const rt = new CpuRuntime({ threads: 2 });
  try {
    let seed = 50;
    const cases = [
      { dtype: "int8", groupSize: 72, asym: false }, // one group per row at K = 72
      { dtype: "int8", groupSize: 32, asym: false },
      { dtype: "int4", groupSize: 32, asym: false },
      { dtype: "int4", groupSize: 32, asym: true },
      { dtype: "int4", groupSize: 64, asym: true },
      { dtype: "int4", groupSize: 40, asym: false }, // ragged last group, no interleaving
    ] as const;
    for (const c of cases) {
      for (const [M, N, K] of [[16, 37, 72], [21, 64, 72], [33, 5, 72]]) {
        for (const [layout, interleave, lanes] of [["interleaved", true, false], ["lanes", true, true], ["row-major", false, false]] as const) {
          const mark = rt.heap.mark();
          const packed = quantize(randomF32(N * K, seed++, 0.5), N, K, c.dtype, { groupSize: c.groupSize, asym: c.asym, scale: "f32" });
          const placed = placePacked(rt.heap, "w", packed, { interleave, lanes });
          const slot: WeightSlot = { ptr: placed.ptr, dtype: c.dtype, shape: [N, K], bytes: placed.bytes, packed: placed.slot };
          const mm = new BlasMatmul(blas, rt, [slot], { blockBytes: 3 * K * 4, minRowsPacked: 16 });
          assert.ok(mm.takes(slot, M));
          const x = randomF32(M * K, seed++);
          const xp = rt.heap.alloc(M * K * 4);
          const op = rt.heap.alloc(M * N * 4);
          rt.heap.f32(xp, M * K).set(x);
          mm.run(slot, rt.heap.f32(xp, M * K), rt.heap.f32(op, M * N), undefined, M, 2);
          const want = new Float32Array(M * N);
          refMatmul(want, x, dequantize(packed), undefined, M, K, N);
          assertClose(rt.heap.f32(op, M * N), want, 2e-6 * Math.sqrt(K), `${c.dtype} g${c.groupSize}${c.asym ? " asym" : ""} ${layout} [${M}, ${K}] x [${N}, ${K}]^T`);
          rt.heap.release(mark);
        }
      }
    }
  } finally {
    rt.close();
  }
});

test("BLAS matmul on w8a8 weights = the reference W8A8 matmul (tokens on their int8 grid; both q layouts, bias)", (t) => {
  const blas = blasOrSkip(t);
  if (!blas) return;
  const rt = new CpuRuntime({ threads: 2 });
  try {
    let seed = 90;
    for (const [M, N, K] of [[16, 37, 72], [33, 20, 200]]) {
      for (const interleave of [true, false]) {
        const mark = rt.heap.mark();
        const packed: PackedMatrix = { ...quantize(randomF32(N * K, seed++, 0.5), N, K, "int8", { groupSize: K, asym: false, scale: "f32" }), dtype: "w8a8" };
        const placed = placePacked(rt.heap, "w", packed, { interleave });
        const slot: WeightSlot = { ptr: placed.ptr, dtype: "w8a8", shape: [N, K], bytes: placed.bytes, packed: placed.slot };
        const mm = new BlasMatmul(blas, rt, [slot], { blockBytes: 3 * K * 4, minRowsPacked: 16 });
        assert.ok(mm.takes(slot, M));
        const x = randomF32(M * K, seed++);
        const bias = randomF32(N, seed++);
        const xp = rt.heap.alloc(M * K * 4);
        const op = rt.heap.alloc(M * N * 4);
        rt.heap.f32(xp, M * K).set(x);
        mm.run(slot, rt.heap.f32(xp, M * K), rt.heap.f32(op, M * N), bias, M, 2);
        const want = new Float32Array(M * N);
        matmulW8A8(want, x, packed, bias, M, K, N);
        assertClose(rt.heap.f32(op, M * N), want, 2e-6 * Math.sqrt(K), `w8a8 ${interleave ? "interleaved" : "row-major"} [${M}, ${K}] x [${N}, ${K}]^T`);
        // weight-only int8 on the same bytes (x as it is) is measurably another result
        const wo = new Float32Array(M * N);
        refMatmul(wo, x, dequantize(packed), bias, M, K, N);
        assert.ok(wo.some((v, i) => Math.abs(v - want[i]) > 1e-3), "w8a8 ran weight-only");
        rt.heap.release(mark);
      }
    }
  } finally {
    rt.close();
  }
});

test("BLAS matmul: the row thresholds pick which matmuls go to BLAS", (t) => {
  const blas = blasOrSkip(t);
  if (!blas) return;
  const rt = new CpuRuntime({ threads: 1 });
  try {
    const f32 = place(rt, randomF32(8 * 8, 3), 8, 8, "f32");
    const bf16 = place(rt, roundTrip(randomF32(8 * 8, 4), "bf16"), 8, 8, "bf16");
    const mm = new BlasMatmul(blas, rt, [f32, bf16], { minRows: 4, minRows16: 12 });
    assert.deepEqual([mm.takes(f32, 3), mm.takes(f32, 4), mm.takes(bf16, 11), mm.takes(bf16, 12)], [false, true, false, true]);
    // the defaults: f32 from 8 rows; 16-bit from 8 on one thread, 12 on more
    const dflt = new BlasMatmul(blas, rt, [f32, bf16]);
    assert.deepEqual([dflt.takes(f32, 7), dflt.takes(f32, 8), dflt.takes(bf16, 7, 1), dflt.takes(bf16, 8, 1), dflt.takes(bf16, 11, 2), dflt.takes(bf16, 12, 2)], [false, true, false, true, false, true]);
    const onlyF32 = new BlasMatmul(blas, rt, [f32], { minRows16: 1 });
    assert.equal(onlyF32.takes(bf16, 64), false, "no widening buffer was sized for a 16-bit weight");
  } finally {
    rt.close();
  }
});

test("cpu backend with every matmul through BLAS = reference backend (f32, bf16 and fp16 weights; plain and fused graphs)", (t) => {
  if (!blasOrSkip(t)) return;
  for (const [name, over] of [["GQA", VARIANTS["llama GQA, interleaved rope"]], ["qkv bias", VARIANTS["qwen2 qkv bias"]]] as const) {
    const ckpt = variantCheckpoint(over);
    const plain = buildLlamaGraph(ckpt.config);
    for (const g of [plain, runPasses(plain).graph]) {
      for (const dtype of ["f32", "bf16", "f16"] as const) {
        const weights = new Map([...weightsFor(g, ckpt)].map(([n, v]) => [n, roundTrip(v, v.length > 256 && dtype !== "f32" ? dtype : "f32")]));
        const kv = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
        const plan = planMemory(g, { T: 16, R: 16 });
        const ref = new ReferenceBackend().bind(g, weights, kv, plan);
        const cpu = new CpuBackend({ threads: 2, parallelMacs: 0, blasMatmul: { minRows: 1, minRows16: 1, blockBytes: 4096 } }).bind(g, weights, kv, plan);
        try {
          assert.ok(cpu.blas, "the backend found the BLAS");
          for (const [i, s] of scenario().entries()) {
            const want = ref.forward(s).get("logits")!;
            const got = cpu.forward(s).get("logits")!;
            assert.ok(maxRelErr(got, want) < 1e-5, `${name} ${dtype} step ${i}: error ${maxRelErr(got, want)}`);
          }
        } finally {
          cpu.close();
        }
      }
    }
  }
});

test("cpu backend with f32 matrices outside the heap (a model past 4 GiB): BLAS runs every matmul, sgemv at one row = reference backend", (t) => {
  if (!blasOrSkip(t)) return;
  const ckpt = variantCheckpoint(VARIANTS["MQA, tied head, linear rope scaling"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const weights = weightsFor(g, ckpt);
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
  const plan = planMemory(g, { T: 16, R: 16 });
  const ref = new ReferenceBackend().bind(g, weights, kv, plan);
  const cpu = new CpuBackend({ threads: 2, parallelMacs: 0, externalWeights: true }).bind(g, weights, kv, plan);
  try {
    const matmulWeights = new Set(g.ops.flatMap((o) => (o.op === "matmul" ? [o.w] : [])));
    const tied = [...matmulWeights].filter((n) => g.ops.some((o) => o.op === "embedding" && o.table === n));
    assert.equal(tied.length, 1, "the variant's head is the embedding table");
    for (const n of matmulWeights) assert.equal(cpu.isExternal(n), !tied.includes(n), n);
    // ragged several-token steps (sgemm), then a prefill and one-token decode steps (sgemv)
    for (const [i, s] of [...scenario(), ...oneSequenceSteps([1, 7, 12, 30, 4, 9, 22, 41, 3, 17, 8, 5, 2], [9, 1, 1, 1, 1])].entries()) {
      const want = ref.forward(s).get("logits")!;
      const got = cpu.forward(s).get("logits")!;
      assert.ok(maxRelErr(got, want) < 1e-5, `step ${i}: error ${maxRelErr(got, want)}`);
    }
  } finally {
    cpu.close();
  }
});

test("LLMRT_BLAS: off turns the path off; a library that cannot be loaded is a typed error", () => {
  assert.equal(systemBlas({ LLMRT_BLAS: "off" }), undefined);
  const ckpt = variantCheckpoint(VARIANTS["llama GQA, interleaved rope"]);
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const kv = { numLayers: ckpt.config.numLayers, numBlocks: 4, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.headDim };
  const cpu = new CpuBackend({ blas: false, threads: 1 }).bind(g, weightsFor(g, ckpt), kv);
  assert.equal(cpu.blas, undefined);
  cpu.close();
  assert.throws(
    () => systemBlas({ LLMRT_BLAS: "/nonexistent/libopenblas.so.0" }),
    (e: unknown) => e instanceof BlasError && /nonexistent\/libopenblas\.so\.0/.test(e.message) && /LLMRT_BLAS=off/.test(e.hint ?? ""),
  );
});

test("loading OpenBLAS sets OPENBLAS_THREAD_TIMEOUT to the shortest spin where it is unset, and keeps a value the user set", (t) => {
  if (!blasOrSkip(t)) return;
  const probe = (env: NodeJS.ProcessEnv) =>
    execFileSync(process.execPath, ["--import", "tsx", "-e", `const b = await import(${JSON.stringify(blasModule)}); b.systemBlas(); console.log(process.env.OPENBLAS_THREAD_TIMEOUT ?? "unset");`], { env, encoding: "utf8" }).trim();
  const { OPENBLAS_THREAD_TIMEOUT: _, ...base } = process.env;
  assert.equal(probe({ ...base, LLMRT_BLAS: "auto" }), "4");
  assert.equal(probe({ ...base, LLMRT_BLAS: "auto", OPENBLAS_THREAD_TIMEOUT: "12" }), "12");
});

/**
 * Column blocks (layout.ts inColBlocks, assembly/matmul.ts): 16-bit matrices with rows over
 * 4096 values are stored as row-major blocks of 2048 columns, so one token's activations
 * stay in L1 while the weights stream past. The layout itself; the matmul on it against the
 * reference for every path (1 token: blocks of rows in sequence; 2 .. 7: tiles per block;
 * 8+: row blocks widened per block), bf16 and fp16 (scaled and unscaled), both SIMD builds,
 * odd sizes, 1 and 2 threads; the BLAS path's widening; and a bound graph whose down
 * projection is wide against the reference backend, its embedding table left row-major.
 */
import { after, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { KvCacheShape, WeightMap } from "../../src/backends/backend.js";
import { CpuBackend } from "../../src/backends/cpu/backend.js";
import { systemBlas } from "../../src/backends/cpu/blas.js";
import { BlasMatmul } from "../../src/backends/cpu/blas-matmul.js";
import * as k from "../../src/backends/cpu/kernels.js";
import { COL_BLOCK, inColBlocks, packWeight, wantsColBlocks } from "../../src/backends/cpu/layout.js";
import { CpuRuntime } from "../../src/backends/cpu/runtime.js";
import type { WeightSlot } from "../../src/backends/cpu/tensors.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { matmul as refMatmul } from "../../src/backends/reference/ops.js";
import { roundTrip } from "../../src/engine/weights.js";
import type { StepBatch } from "../../src/graph/step-batch.js";
import { runPasses } from "../../src/graph/passes/pipeline.js";
import { buildLlamaGraph } from "../../src/models/llama.js";
import { assertClose, randomF32 } from "./cpu-util.js";
import { BLOCK_SIZE, maxRelErr, oneSequenceSteps, scenario, variantCheckpoint, weightsFor } from "./graph-util.js";

const builds = (["relaxed", "simd"] as const).map((simd) => ({ simd, rt1: new CpuRuntime({ threads: 1, simd }), rt2: new CpuRuntime({ threads: 2, spin: 2000, simd }) }));
after(() => builds.forEach((b) => (b.rt1.close(), b.rt2.close())));

test("inColBlocks: block c of [N, K] is the row-major [N, min(kc, K - c kc)] of its columns, one block after another", () => {
  const N = 3, K = 70, kc = 32; // blocks of 32, 32 and 6 columns
  const v = Float32Array.from({ length: N * K }, (_, i) => i); // exact in bf16 up to 256
  const p = packWeight(v.map((x) => x % 256), [N, K], "bf16");
  const b = inColBlocks(p, kc);
  assert.equal(b.colBlock, kc);
  assert.equal(b.bytes.byteLength, p.bytes.byteLength);
  const at = (bytes: Uint8Array, i: number) => bytes[2 * i] | (bytes[2 * i + 1] << 8);
  let i = 0;
  for (let k0 = 0; k0 < K; k0 += kc) for (let n = 0; n < N; n++) for (let c = k0; c < Math.min(K, k0 + kc); c++) assert.equal(at(b.bytes, i++), at(p.bytes, n * K + c), `block ${k0 / kc} row ${n} col ${c}`);
  assert.throws(() => inColBlocks(b, kc), RangeError); // already blocked
  assert.throws(() => inColBlocks(p, 48), RangeError); // not a multiple of 32
  assert.throws(() => inColBlocks(p, 96), RangeError); // one block: nothing to split
  assert.ok(wantsColBlocks("bf16", [8, 2 * COL_BLOCK + 1]) && wantsColBlocks("f16", [8, 5632]));
  assert.ok(!wantsColBlocks("bf16", [8, 2 * COL_BLOCK]) && !wantsColBlocks("f32", [8, 5632]) && !wantsColBlocks("bf16", [5632]));
});

test("matmul over column blocks = reference: bf16 / fp16, 1 .. 13 tokens, odd sizes, bias, 1 and 2 threads, both SIMD builds", () => {
  // [T, K, N, kc]: small blocks keep the test fast; the last case is the real block size with a ragged last block
  const cases: [number, number, number, number][] = [
    [1, 203, 7, 64], [1, 96, 33, 32], [2, 203, 9, 64], [3, 130, 1, 32], [5, 203, 130, 96], [7, 71, 4, 32],
    [8, 203, 33, 64], [13, 100, 17, 32], [1, 4100, 37, COL_BLOCK], [6, 4100, 5, COL_BLOCK], [9, 4100, 6, COL_BLOCK],
  ];
  let seed = 1;
  for (const { simd, rt1, rt2 } of builds) {
    for (const dtype of ["bf16", "f16"] as const) {
      for (const [T, K, N, kc] of cases) {
        const w = roundTrip(randomF32(N * K, seed++, 0.5), dtype);
        const x = randomF32(T * K, seed++);
        const bias = N % 2 ? randomF32(N, seed++) : undefined;
        const want = new Float32Array(T * N);
        refMatmul(want, x, w, bias, T, K, N);
        const blocked = inColBlocks(packWeight(w, [N, K], dtype), kc);
        const what = `${simd} ${dtype} T=${T} K=${K} N=${N} kc=${kc}`;
        assertClose(k.matmul(rt2, x, blocked, bias, T), want, 2e-5, `${what}, 2 threads`);
        assertClose(k.matmul(rt1, x, blocked, bias, T), want, 2e-5, `${what}, 1 thread`);
      }
      // activations past fp16's scaled range take the unscaled path; infinities must stay infinite
      const T = 1, K = 203, N = 5;
      const w = roundTrip(randomF32(N * K, seed++, 0.5), dtype);
      const x = randomF32(T * K, seed++).map((v, i) => (i === 100 ? 3e18 : v));
      const want = new Float32Array(T * N);
      refMatmul(want, x, w, undefined, T, K, N);
      assertClose(k.matmul(rt1, x, inColBlocks(packWeight(w, [N, K], dtype), 64), undefined, T), want, 2e-5, `${simd} ${dtype} huge activation`);
    }
  }
});

test("BLAS path: column-blocked bf16 / fp16 weights widen to the row-major f32 rows sgemm reads", (t: TestContext) => {
  const blas = systemBlas({ LLMRT_BLAS: "auto" });
  if (!blas) {
    const msg = "no OpenBLAS library found (Debian: apt-get install libopenblas0); the BLAS path is untested here";
    if (process.env.CI === "true") throw new Error(msg);
    t.skip(msg);
    return;
  }
  const rt = new CpuRuntime({ threads: 2 });
  try {
    let seed = 50;
    for (const dtype of ["bf16", "f16"] as const) {
      const [M, K, N, kc] = [13, 203, 37, 64];
      const w = roundTrip(randomF32(N * K, seed++, 0.5), dtype);
      const x = randomF32(M * K, seed++);
      const p = inColBlocks(packWeight(w, [N, K], dtype), kc);
      const ptr = rt.heap.alloc(p.bytes.byteLength);
      rt.heap.u8(ptr, p.bytes.byteLength).set(p.bytes);
      const slot: WeightSlot = { ptr, dtype, shape: [N, K], bytes: p.bytes.byteLength, colBlock: kc };
      // blocks of 5 rows: the widening is ragged and crosses every column block
      const mm = new BlasMatmul(blas, rt, [slot], { blockBytes: 5 * K * 4, minRows16: 1 });
      const xp = rt.heap.alloc(M * K * 4);
      const op = rt.heap.alloc(M * N * 4);
      rt.heap.f32(xp, M * K).set(x);
      mm.run(slot, rt.heap.f32(xp, M * K), rt.heap.f32(op, M * N), undefined, M, 2);
      const want = new Float32Array(M * N);
      refMatmul(want, x, w, undefined, M, K, N);
      assertClose(rt.heap.f32(op, M * N), want, 2e-6 * Math.sqrt(K), `${dtype} [${M}, ${K}] x [${N}, ${K}]^T`);
    }
  } finally {
    rt.close();
  }
});

/** Prefill and mixed steps (graph-util's scenario), then a prefill and one-token decodes of a third sequence. */
const steps = (): StepBatch[] => [...scenario(), ...oneSequenceSteps([1, 7, 12, 30, 4, 9, 22, 41, 3], [6, 1, 1, 1], 2)];

test("cpu backend = reference with a wide ffn_down (K 4104) in bf16 / fp16: stored in column blocks, the embedding row-major", () => {
  const ckpt = variantCheckpoint({ intermediateSize: 4104, tieWordEmbeddings: true });
  const g = runPasses(buildLlamaGraph(ckpt.config)).graph;
  const kv: KvCacheShape = { numLayers: ckpt.config.numLayers, numBlocks: 16, blockSize: BLOCK_SIZE, numKvHeads: ckpt.config.numKvHeads, headDim: ckpt.config.hiddenSize / ckpt.config.numHeads };
  for (const dt of ["bf16", "f16"] as const) {
    const weights: WeightMap = new Map([...weightsFor(g, ckpt)].map(([n, v]) => [n, roundTrip(v, (g.tensors.get(n) as { shape: number[] }).shape.length > 1 ? dt : "f32")]));
    const ref = new ReferenceBackend().bind(g, weights, kv);
    for (const threads of [1, 2]) {
      const cpu = new CpuBackend({ threads, parallelMacs: 0, blas: false }).bind(g, weights, kv);
      try {
        const wide = [...g.tensors].filter(([, d]) => d.kind === "weight" && d.shape.length === 2 && d.shape[1] > 2 * COL_BLOCK).map(([n]) => n);
        assert.ok(wide.length > 0 && wide.every((n) => cpu.colBlock(n) === COL_BLOCK), `wide matrices in column blocks: ${wide.join(", ")}`);
        const table = g.ops.find((op) => op.op === "embedding") as { table: string };
        assert.equal(cpu.colBlock(table.table), undefined, "the embedding table stays row-major");
        for (const [i, s] of steps().entries()) {
          const want = ref.forward(s).get("logits")!;
          const got = cpu.forward(s).get("logits")!;
          assert.ok(maxRelErr(got, want) < 1e-5, `${dt} ${threads} thread(s) step ${i} (${s.numTokens} tokens): error ${maxRelErr(got, want)}`);
        }
      } finally {
        cpu.close();
      }
    }
  }
});

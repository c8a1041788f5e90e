/**
 * `llmrt bench --model synthetic:... --model-format F`: the random model is written once
 * to a cache entry that the normal readers open, reused on the next run, safe against
 * concurrent writers; --kv-dtype reaches the engine; a shape too big for the CPU
 * target's 4 GiB heap is refused before anything is allocated.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HEAP_LIMIT_BYTES, HeapLimitError } from "../../src/backends/cpu/heap.js";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import type { Checkpoint, TensorDType } from "../../src/checkpoint/types.js";
import { cpuHeapBytes, openBenchCheckpoint } from "../../src/cli/bench-model.js";
import { expectedTensors } from "../../src/checkpoint/expected-tensors.js";
import { SYNTHETIC_PRESETS, syntheticCheckpoint, syntheticConfig } from "../../src/models/synthetic.js";
import { syntheticModelFile, syntheticSpecConfig, type SyntheticFormat } from "../../src/models/synthetic-files.js";
import { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { runCli } from "../helpers/cli.js";

const tmpRoot = (t: { after(fn: () => void): void }) => {
  const d = mkdtempSync(join(tmpdir(), "llmrt-synth-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
const lastJson = (stdout: string) => JSON.parse(stdout.trimEnd().split("\n").at(-1)!);

const JSON_SHAPE = { hiddenSize: 128, intermediateSize: 256, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 300, maxPositionEmbeddings: 256 };
const CASES: [SyntheticFormat, TensorDType][] = [["gguf", "f32"], ["gguf", "f16"], ["gguf", "q8_0"], ["safetensors", "bf16"], ["llama2c", "f32"], ["llama2c", "q8_0"]];

/** Logits of one 5-token prefill on the reference backend. */
function logits(ck: Checkpoint): Float32Array {
  const engine = Engine.fromCheckpoint(ck, { backend: new ReferenceBackend(), maxSeqLen: 16, maxBatchTokens: 8, maxLogitRows: 1 });
  const seq = new Sequence(0, [1, 7, 3, 42, 5]);
  new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, 5);
  return engine.forward(buildStep([{ seq, numNew: 5, wantLogits: true }], engine.kv.blockSize));
}

function assertClose(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-3, `${what}: logits differ by up to ${worst}`);
}

for (const [label, config] of [["tiny preset", syntheticConfig(SYNTHETIC_PRESETS.tiny)], ["JSON shape", syntheticSpecConfig(`synthetic:${JSON.stringify(JSON_SHAPE)}`)!]] as const) {
  test(`synthetic files of the ${label} open with the normal reader, with the shape and dtype asked`, (t) => {
    const root = tmpRoot(t);
    const ref = syntheticCheckpoint(config, 0);
    for (const [format, dtype] of CASES) {
      const f = syntheticModelFile(config, format, dtype, { root });
      assert.equal(f.written, true);
      const ck = openCheckpoint(f.path);
      try {
        const what = `${format} ${dtype}`;
        for (const k of ["hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "vocabSize", "tieWordEmbeddings"] as const) assert.equal(ck.config[k], config[k], `${what}: ${k}`);
        assert.equal(ck.info("blk.0.ffn_up.weight").dtype, dtype, what);
        assert.deepEqual(ck.info("blk.0.ffn_up.weight").shape, [config.intermediateSize, config.hiddenSize], what);
        // f32 files hold the generator's values exactly (ffn_up: no RoPE permutation), and so the same model
        if (dtype === "f32") {
          assert.deepEqual(ck.readF32("blk.0.ffn_up.weight"), ref.readF32("blk.0.ffn_up.weight"), what);
          if (label === "tiny preset") assertClose(logits(ck), logits(ref), what);
        }
      } finally {
        ck.close();
      }
    }
  });
}

test("a synthetic Q4_K_M GGUF mixes types as llama.cpp's quantize does: Q6_K head, attn_v and ffn_down of the first and last eighth and every third layer between; Q4_K elsewhere", (t) => {
  const config = syntheticSpecConfig(`synthetic:${JSON.stringify({ ...JSON_SHAPE, hiddenSize: 256, intermediateSize: 512, numLayers: 16 })}`)!;
  const f = syntheticModelFile(config, "gguf", "q4_k_m", { root: tmpRoot(t) });
  const ck = openCheckpoint(f.path);
  try {
    const moreBits = [0, 1, 4, 7, 10, 13, 14, 15]; // n = 16: i < 2, i >= 14, (i - 2) % 3 == 2
    for (let i = 0; i < 16; i++) {
      const want = moreBits.includes(i) ? "q6_k" : "q4_k";
      for (const m of ["attn_v", "ffn_down"]) assert.equal(ck.info(`blk.${i}.${m}.weight`).dtype, want, `layer ${i} ${m}`);
      for (const m of ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"]) assert.equal(ck.info(`blk.${i}.${m}.weight`).dtype, "q4_k", `layer ${i} ${m}`);
    }
    assert.equal(ck.info("output.weight").dtype, "q6_k");
    assert.equal(ck.info("token_embd.weight").dtype, "q4_k");
  } finally {
    ck.close();
  }
});

test("a file format that cannot hold the dtype is refused with the choices it has", () => {
  assert.throws(() => syntheticModelFile(syntheticConfig(SYNTHETIC_PRESETS.tiny), "safetensors", "q4_0", { root: "/nonexistent" }), /safetensors file cannot store q4_0.*f32, f16, bf16/s);
});

test("a writer that loses the rename race uses the winner's complete entry and leaves no temp files", (t) => {
  const root = tmpRoot(t);
  const config = syntheticConfig(SYNTHETIC_PRESETS.tiny);
  let inner: ReturnType<typeof syntheticModelFile> | undefined;
  // while the first writer is between "written" and "renamed", a second one completes
  const outer = syntheticModelFile(config, "gguf", "f16", { root, beforeRename: () => (inner = syntheticModelFile(config, "gguf", "f16", { root })) });
  assert.equal(inner?.written, true);
  assert.equal(outer.written, false);
  assert.equal(outer.path, inner!.path);
  assert.deepEqual(readdirSync(root).filter((n) => n.includes(".tmp-")), []);
  const ck = openCheckpoint(outer.path);
  assert.equal(ck.config.hiddenSize, config.hiddenSize);
  ck.close();
});

const BENCH = ["bench", "latency", "--model", "synthetic:tiny", "--model-format", "gguf", "--prompt-tokens", "4", "--gen-tokens", "2", "--runs", "1", "--threads", "1", "--json"];

test("bench writes the synthetic file once, then reuses it untouched; --kv-dtype int8 reaches the engine", (t) => {
  const cache = tmpRoot(t);
  const a = runCli(BENCH, { LLMRT_CACHE: cache });
  assert.equal(a.status, 0, a.stderr);
  const ja = lastJson(a.stdout);
  assert.match(a.stderr, /synthetic model written to/);
  assert.ok(ja.model_file.startsWith(join(cache, "synthetic")), ja.model_file);
  assert.equal(ja.kv_dtype, "f32");
  const mtime = statSync(ja.model_file).mtimeMs;

  const b = runCli([...BENCH, "--kv-dtype", "int8"], { LLMRT_CACHE: cache });
  assert.equal(b.status, 0, b.stderr);
  const jb = lastJson(b.stdout);
  assert.match(b.stderr, /synthetic model reused from/);
  assert.equal(jb.model_file, ja.model_file);
  assert.equal(statSync(jb.model_file).mtimeMs, mtime);
  assert.equal(jb.kv_dtype, "int8");
  assert.ok(jb.kv_bytes < ja.kv_bytes, `int8 KV ${jb.kv_bytes} bytes, f32 ${ja.kv_bytes}`);
  assert.ok(jb.decode_tok_per_s > 0);
});

test("bench latency on a Q4_0 / Q4_K GGUF measures the packed engine generate and serve run, not weights widened in memory", (t) => {
  const cache = tmpRoot(t);
  const shape = JSON.stringify({ ...JSON_SHAPE, hiddenSize: 256, intermediateSize: 512 });
  const widened = (() => {
    const c = syntheticSpecConfig(`synthetic:${shape}`)!;
    let n = 0;
    for (const [name, s] of expectedTensors(c)) if (s.length === 2 && name !== "token_embd.weight") n += s[0] * s[1];
    return 2 * n; // the matrices in 16 bits
  })();
  for (const dtype of ["q4_0", "q4_k"]) {
    const r = runCli(["bench", "latency", "--model", `synthetic:${shape}`, "--model-format", "gguf", "--model-dtype", dtype, "--prompt-tokens", "4", "--gen-tokens", "2", "--runs", "1", "--threads", "1", "--json"], { LLMRT_CACHE: cache });
    assert.equal(r.status, 0, r.stderr);
    const j = lastJson(r.stdout);
    // 4-bit matrices with their scales: well under half of 16 bits
    assert.ok(j.weight_bytes_per_token < 0.45 * widened, `${dtype}: ${j.weight_bytes_per_token} weight bytes a token, 16-bit matrices ${widened}`);
    assert.ok(j.decode_tok_per_s > 0);
  }
});

function runCliAsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d));
    p.stderr.on("data", (d: Buffer) => (stderr += d));
    const kill = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.on("close", (status) => (clearTimeout(kill), resolve({ status, stdout, stderr })));
  });
}

test("two bench processes writing the same synthetic model at once both succeed on one complete entry", async (t) => {
  const cache = tmpRoot(t);
  const args = [...BENCH.slice(0, 5), "safetensors", ...BENCH.slice(6)];
  const runs = await Promise.all([runCliAsync(args, { LLMRT_CACHE: cache }), runCliAsync(args, { LLMRT_CACHE: cache })]);
  for (const r of runs) assert.equal(r.status, 0, r.stderr);
  const [p1, p2] = runs.map((r) => lastJson(r.stdout).model_file);
  assert.equal(p1, p2);
  assert.deepEqual(readdirSync(join(cache, "synthetic")).filter((n) => n.includes(".tmp-")), []);
  const ck = openCheckpoint(p1);
  assert.equal(ck.config.hiddenSize, SYNTHETIC_PRESETS.tiny.hiddenSize);
  ck.close();
});

// 4096 x 11008, 6 layers, vocab 32000: about 5.9 GB of f32 weights, 2.9 GB in 16 bits
const HUGE = `synthetic:${JSON.stringify({ hiddenSize: 4096, intermediateSize: 11008, numLayers: 6, numHeads: 32, vocabSize: 32000 })}`;

test("without a BLAS, a shape that needs more than the 4 GiB heap in f32 is refused before anything is generated", async (t) => {
  const cache = tmpRoot(t);
  const sizes = { maxSeqs: 1, maxSeqLen: 64, blockSize: 16 };
  process.env.LLMRT_CACHE = cache;
  process.env.LLMRT_BLAS = "off"; // with one, f32 matrices would stay outside the heap (next test)
  t.after(() => {
    delete process.env.LLMRT_CACHE;
    delete process.env.LLMRT_BLAS;
  });
  await assert.rejects(openBenchCheckpoint({ model: HUGE, target: "cpu", dtype: "fp32", modelFormat: "gguf" }, sizes), (e: unknown) => {
    assert.ok(e instanceof HeapLimitError, String(e));
    assert.ok(e.bytesNeeded > HEAP_LIMIT_BYTES && e.bytesNeeded < 2 * HEAP_LIMIT_BYTES, `${e.bytesNeeded}`);
    assert.match(e.message, new RegExp(`${e.bytesNeeded} bytes`));
    assert.match(e.message, /--dtype bf16/);
    return true;
  });
  assert.deepEqual(readdirSync(cache), []); // nothing written

  const r = runCli(["bench", "latency", "--model", HUGE, "--prompt-tokens", "4", "--gen-tokens", "2"], { LLMRT_CACHE: cache, LLMRT_BLAS: "off" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /llmrt: the CPU backend's memory would need \d+ bytes .*at most 4 GiB.*hint: .*--dtype bf16/s);
});

test("with a BLAS, f32 matrices are counted outside the heap: only the largest (an embedding table) stays in it", () => {
  const config = syntheticSpecConfig(HUGE)!;
  const tensors = [...expectedTensors(config).values()].map((shape) => ({ shape, dtype: "f32" as const }));
  const sizes = { maxSeqs: 1, maxSeqLen: 64, blockSize: 16, dtype: "fp32" as const };
  const without = cpuHeapBytes(config, tensors, sizes);
  const withBlas = cpuHeapBytes(config, tensors, { ...sizes, blas: true });
  assert.ok(without.weights > HEAP_LIMIT_BYTES, `${without.weights}`);
  const vectors = tensors.filter((t) => t.shape.length < 2).reduce((n, t) => n + t.shape[0] * 4, 0);
  assert.equal(withBlas.weights, vectors + 32000 * 4096 * 4);
});

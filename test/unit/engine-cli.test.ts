/** llmrt build and llmrt inspect, run in-process through commander. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "../../src/cli/inspect.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { readManifest } from "../../src/engine/format.js";
import { OptionError } from "../../src/errors.js";
import { resolveTarget } from "../../src/engine/targets.js";
import { variantCheckpoint } from "./graph-util.js";
import { runBuild as build } from "../helpers/cli.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-cli-test-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
// what --target auto, the default, picks on this machine (cpu without a GPU)
const AUTO = resolveTarget("auto").target;
const src = variantCheckpoint({ numKvHeads: 2, vocabSize: 300 });
const gguf = join(tmp, "m.gguf");
writeModelGguf(gguf, src.config, src);

test("llmrt build writes an engine dir with the options given and logs what the passes did", async () => {
  const out = join(tmp, "e-bf16");
  const log = await build("--model", gguf, "-o", out, "--dtype", "bf16", "--max-batch-tokens", "64", "--max-seqs", "4", "--max-seq-len", "32");
  assert.match(log, new RegExp(`built .* in [\\d.]+ s \\(target ${AUTO}, dtype bf16, weights (f32|bf16) .*\\)`));
  assert.match(log, /fused 2 QKV, 2 gate\/up, 3 add\+RMSNorm, 2 SiLU\*mul, 2 RoPE\+attention; .*kernels per layer 17 -> 8 \(per step 39 -> 21\); arena .* \(naive .*\)/);
  assert.deepEqual(readdirSync(out).sort(), ["engine.json", "tokenizer.gguf", "weights.bin"]);
  const m = readManifest(out);
  assert.deepEqual(m.build, { dtype: "bf16", target: AUTO, maxBatchTokens: 64, maxSeqs: 4, maxSeqLen: 32, maxLogitRows: 4 });
  // a rebuild into the same dir is fine; a dir holding something else is refused
  await build("--model", gguf, "-o", out);
  const other = join(tmp, "other");
  mkdirSync(other);
  writeFileSync(join(other, "notes.txt"), "mine");
  await assert.rejects(build("--model", gguf, "-o", other), (e: unknown) => e instanceof OptionError && /not an engine dir/.test(e.message));
  await assert.rejects(build("--model", gguf, "-o", join(tmp, "x"), "--target", "tpu"), /unknown target "tpu"/);
});

test("llmrt inspect shows passes, fusions, kernels, arena, weights and build options, for a dir or a checkpoint", async () => {
  const out = join(tmp, "e-fp16");
  await build("--model", gguf, "-o", out, "--dtype", "fp16");
  const text = await inspect(out, { dtype: "fp32", graph: true, layer: 1 });
  for (const re of [
    new RegExp(`format v1, target ${AUTO}`),
    new RegExp(`build +dtype fp16, target ${AUTO}, maxBatchTokens 512, maxSeqs 16`),
    /fuse-qkv +\d+ -> \d+ +fused 2 QKV/,
    /fusions +fused QKV x2, fused gate\/up x2, fused add\+RMSNorm x3, fused SiLU\*mul x2, fused RoPE\+attention x2/,
    /ops before .*rope 4, kv_write 2, attention 2/,
    /ops after .*attention_qkv 2, add_rmsnorm 3, silu_mul 2/,
    /kernels +per layer 17 -> 8 \(by layer: 17 17 -> 8 9\); per step 39 -> 21/,
    /arena +[\d.]+ KB planned; naive [\d.]+ MB/,
    /weights +(f16 [\d.]+ KB, f32 \d+ B|f32 \d+ B, f16 [\d.]+ KB) \(total/,
    /tokenizer gguf \(tokenizer.gguf\)/,
    /l1\.qkv \[T,64\] = matmul/,
  ]) assert.match(text, re);
  assert.doesNotMatch(text, /l0\.qkv/); // --layer 1
  const planned = await inspect(gguf, { dtype: "bf16", maxSeqs: 2 });
  assert.match(planned, /not built/);
  assert.match(planned, /build +dtype bf16, .*maxSeqs 2/);
  assert.match(planned, /weights +.*bf16 [\d.]+ KB/);
});

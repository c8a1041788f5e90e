/**
 * The engine cache: a checkpoint is built once per (file identity, build options) and
 * reused; touching the checkpoint or changing an option builds anew; a damaged cached
 * manifest is rebuilt; LLM.load takes both an engine dir and a checkpoint.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../../src/api/llm.js";
import { loadModel } from "../../src/api/load-model.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { engineCacheKey, ensureCachedEngine } from "../../src/engine/cache.js";
import { resolveBuildOptions } from "../../src/engine/options.js";
import { variantCheckpoint } from "./graph-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-cache-test-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const src = variantCheckpoint({ numKvHeads: 2, vocabSize: 300 });
const file = join(tmp, "model.gguf");
writeModelGguf(file, src.config, src);
const OPTS = { maxBatchTokens: 16, maxSeqs: 2, maxLogitRows: 16 };

test("built once, reused; new options or a touched checkpoint give a new key", () => {
  const cache = join(tmp, "c1");
  const ckpt = openCheckpoint(file);
  try {
    const first = ensureCachedEngine(ckpt, OPTS, {}, cache);
    const again = ensureCachedEngine(ckpt, OPTS, {}, cache);
    assert.equal(first.built, true);
    assert.equal(again.built, false);
    assert.equal(again.dir, first.dir);
    const fp16 = ensureCachedEngine(ckpt, { ...OPTS, dtype: "fp16" }, {}, cache);
    assert.notEqual(fp16.dir, first.dir);
    assert.equal(readdirSync(cache).length, 2); // no temporary dirs left behind

    const key = engineCacheKey(ckpt, resolveBuildOptions(ckpt.config, OPTS));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    assert.notEqual(engineCacheKey(ckpt, resolveBuildOptions(ckpt.config, OPTS)), key);
  } finally {
    ckpt.close();
  }
});

test("a damaged cached manifest is rebuilt, not loaded", () => {
  const cache = join(tmp, "c2");
  const ckpt = openCheckpoint(file);
  try {
    const { dir } = ensureCachedEngine(ckpt, OPTS, {}, cache);
    writeFileSync(join(dir, "engine.json"), "{ not json");
    const again = ensureCachedEngine(ckpt, OPTS, {}, cache);
    assert.equal(again.built, true);
    assert.equal(again.dir, dir);
  } finally {
    ckpt.close();
  }
});

test("loadModel builds a checkpoint into the cache, reports progress and the build log; LLM runs the engine dir", async () => {
  const cache = join(tmp, "c3");
  const logs: string[] = [];
  let last = 0;
  const a = await loadModel(file, { engineCache: cache, build: OPTS, onBuildLog: (l) => logs.push(l), onBuildProgress: (p) => (last = p.done / p.total) });
  a.checkpoint.close();
  assert.equal(a.built, true);
  assert.equal(last, 1);
  assert.match(logs[0], /fused 2 QKV, 2 gate\/up, 3 add\+RMSNorm, 2 SiLU\*mul, 2 RoPE\+attention; .*kernels per layer 17 -> 8/);
  const b = await loadModel(file, { engineCache: cache, build: OPTS });
  b.checkpoint.close();
  assert.equal(b.built, false);
  assert.equal(b.engineDir, a.engineDir);

  const params = { temperature: 0, maxTokens: 8, ignoreEos: true };
  const fromDir = await LLM.load(a.engineDir);
  const fromCheckpoint = await LLM.load(file, { engineCache: cache });
  try {
    const [x] = await fromDir.generate("hello", params);
    const [y] = await fromCheckpoint.generate("hello", params);
    assert.equal(x.outputs[0].tokenIds.length, 8);
    assert.deepEqual(x.outputs[0].tokenIds, y.outputs[0].tokenIds);
  } finally {
    fromDir.close();
    fromCheckpoint.close();
  }
});

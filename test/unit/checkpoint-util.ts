/** Shared helpers for the checkpoint tests: temp dirs, small configs, seeded tensors. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { ModelConfig } from "../../src/checkpoint/config.js";
import { expectedTensors } from "../../src/checkpoint/expected-tensors.js";

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-ckpt-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A small llama config: 2 layers, GQA, head_dim 8, hidden 32 (a multiple of 32 for Q8_0/Q4_0). */
export function smallConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: "llama",
    vocabSize: 300,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    maxPositionEmbeddings: 128,
    rmsNormEps: 1e-5,
    rope: { theta: 10000, style: "neox", dim: 8, scaling: { type: "none" } },
    tieWordEmbeddings: false,
    attentionBias: false,
    qkNorm: false,
    slidingWindow: null,
    bosTokenId: 1,
    eosTokenIds: [2],
    ...over,
  };
}

/** Deterministic uniform values in [-1, 1). */
export function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

export function randomTensors(c: ModelConfig, seed = 1): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  let i = 0;
  for (const [name, shape] of expectedTensors(c)) m.set(name, seeded(shape.reduce((a, b) => a * b, 1), seed * 1000 + ++i));
  return m;
}

export function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what = ""): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  assert.ok(worst <= tol, `${what}: max abs diff ${worst} > ${tol}`);
}

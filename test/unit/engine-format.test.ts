/**
 * Engine dirs: a built engine loads to the same outputs as the in-memory build, stores
 * what engine.json says (aligned, checksummed, dtypes), carries its tokenizer, and every
 * kind of bad input is a typed EngineError that says what to rebuild.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReferenceBackend } from "../../src/backends/reference/backend.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { writeModelGguf } from "../../src/checkpoint/write-gguf-model.js";
import { buildEngineDir } from "../../src/engine/build.js";
import { Engine } from "../../src/engine/engine.js";
import { ENGINE_FORMAT_VERSION, WeightsReader, WeightsWriter, readManifest, type EngineManifest } from "../../src/engine/format.js";
import { crc32Hex } from "../../src/engine/checksum.js";
import { encodePacked, encodePackedParts } from "../../src/quant/packed.js";
import { quantize } from "../../src/quant/quantize.js";
import { EngineError } from "../../src/errors.js";
import { loadTokenizer } from "../../src/tokenizer/load.js";
import { loadModel } from "../../src/api/load-model.js";
import { VARIANTS, maxRelErr, scenario, variantCheckpoint } from "./graph-util.js";

const tmp = mkdtempSync(join(tmpdir(), "llmrt-engine-test-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const ckpt = variantCheckpoint(VARIANTS["qwen3 q/k norm, headDim 16"]);
const OPTS = { maxBatchTokens: 8, maxLogitRows: 8, maxSeqs: 2, maxSeqLen: 64 };
let n = 0;
function build(extra: Partial<Parameters<typeof buildEngineDir>[2]> = {}, c = ckpt): string {
  const dir = join(tmp, `e${n++}`);
  buildEngineDir(c, dir, { ...OPTS, ...extra });
  return dir;
}

/** Logits of every row of the scenario's steps. */
function run(engine: Engine): Float32Array[] {
  return scenario().map((s) => engine.forward(s));
}

test("a loaded fp32 engine computes exactly what the in-memory build does, for every variant", () => {
  for (const over of Object.values(VARIANTS)) {
    const c = variantCheckpoint(over);
    const loaded = Engine.load(build({}, c), { blockSize: 4, numBlocks: 16 });
    const inMemory = Engine.fromCheckpoint(c, { ...OPTS, blockSize: 4, numBlocks: 16 });
    assert.deepEqual(run(loaded), run(inMemory));
    assert.equal(loaded.maxBatchTokens, 8);
  }
});

test("engine.json: format, version, target, build options, aligned checksummed tensors; weights.bin as recorded", () => {
  const dir = build();
  const m = readManifest(dir);
  assert.equal(m.format, "llmrt-engine");
  assert.equal(m.version, ENGINE_FORMAT_VERSION);
  assert.equal(m.target, "reference");
  assert.deepEqual(m.build, { dtype: "fp32", target: "reference", ...OPTS });
  assert.equal(m.weights.bytes, statSync(join(dir, "weights.bin")).size);
  for (const t of m.weights.tensors) {
    assert.equal(t.offset % 64, 0, t.name);
    assert.match(t.checksum, /^[0-9a-f]{8}$/);
    assert.equal(t.length, t.shape.reduce((a, b) => a * b, 1) * 4);
  }
  const names = m.weights.tensors.map((t) => t.name);
  assert.ok(names.includes("blk.0.attn_qkv.weight") && names.includes("rope.inv_freq") && !names.includes("blk.0.attn_q.weight"));
  assert.ok(m.memoryPlan.arenaBytes < m.memoryPlan.naiveBytes);
  assert.equal(m.report.kernelsPerLayer.after, 8);
  assert.equal(m.tokenizer.kind, "ascii");
});

test("fp16 and bf16 engines store matrices in 16 bits, vectors in fp32, and stay close to fp32", () => {
  const fp32 = run(Engine.load(build(), { blockSize: 4, numBlocks: 16 }));
  for (const dtype of ["fp16", "bf16"] as const) {
    const dir = build({ dtype });
    const m = readManifest(dir);
    for (const t of m.weights.tensors) assert.equal(t.dtype, t.shape.length >= 2 ? (dtype === "fp16" ? "f16" : "bf16") : "f32", t.name);
    const got = run(Engine.load(dir, { blockSize: 4, numBlocks: 16 }));
    const err = Math.max(...got.map((g, i) => maxRelErr(g, fp32[i])));
    assert.ok(err > 0 && err < (dtype === "fp16" ? 2e-3 : 2e-2), `${dtype}: relative logit error ${err}`);
    // the in-memory build rounds the same way
    assert.deepEqual(run(Engine.fromCheckpoint(ckpt, { ...OPTS, dtype, blockSize: 4, numBlocks: 16 })), got);
  }
});

test("a GGUF checkpoint's vocabulary travels as a vocab-only GGUF that tokenizes the same", async () => {
  const c = variantCheckpoint({ vocabSize: 300 });
  const file = join(tmp, "model.gguf");
  writeModelGguf(file, c.config, c);
  const gguf = openCheckpoint(file);
  const dir = build({}, gguf);
  gguf.close();
  const m = readManifest(dir);
  assert.deepEqual(m.tokenizer, { kind: "gguf", files: ["tokenizer.gguf"] });
  assert.ok(statSync(join(dir, "tokenizer.gguf")).size < statSync(file).size / 4);
  const [a, b] = [await loadTokenizer(file), await loadTokenizer(join(dir, "tokenizer.gguf"))];
  for (const s of ["Hello, world!", " spaces  and\ttabs\n", "ünïcödé"]) assert.deepEqual(b.encode(s), a.encode(s), s);
  const loaded = await loadModel(dir);
  assert.deepEqual(loaded.tokenizer.encode("abc"), a.encode("abc"));
  assert.equal(loaded.engineDir, dir);
  loaded.checkpoint.close();
});

/** Builds, damages, and expects a typed EngineError matching `re` with a rebuild hint. */
function expectEngineError(damage: (dir: string, m: EngineManifest) => void, re: RegExp, load: (dir: string) => unknown = (d) => Engine.load(d)) {
  const dir = build();
  damage(dir, readManifest(dir));
  assert.throws(() => load(dir), (e: unknown) => {
    assert.ok(e instanceof EngineError, `not an EngineError: ${String(e)}`);
    assert.equal(e.code, "engine");
    assert.match(e.message, re);
    assert.match(e.message, /hint: .*(rebuild|llmrt build)/);
    return true;
  });
}

const editManifest = (edit: (m: Record<string, unknown>) => void) => (dir: string) => {
  const p = join(dir, "engine.json");
  const m = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
  edit(m);
  writeFileSync(p, JSON.stringify(m));
};

test("bad input: another format version, another target, not an engine", () => {
  expectEngineError(editManifest((m) => (m.version = 999)), /engine format version 999; this llmrt reads version 1/);
  // an engine packed for another target, opened with this backend (a cuda engine without a GPU is CudaUnavailableError, tested with the cuda backend)
  expectEngineError(editManifest((m) => (m.target = "cpu")), /built for target "cpu"/, (d) => Engine.load(d, { backend: new ReferenceBackend() }));
  expectEngineError(editManifest((m) => (m.format = "something-else")), /format is "something-else"/);
  expectEngineError((d) => rmSync(join(d, "engine.json")), /no engine.json/);
  expectEngineError(() => {}, /built for target "reference".*have: other/, (d) => Engine.load(d, { backend: Object.assign(new ReferenceBackend(), { name: "other" }) }));
});

test("bad input: truncated or altered weights.bin", () => {
  expectEngineError((d) => truncateSync(join(d, "weights.bin"), 1000), /truncated: 1000 bytes, engine.json says \d+/);
  expectEngineError((d, m) => {
    const p = join(d, "weights.bin");
    const bytes = readFileSync(p);
    const t = m.weights.tensors.find((x) => x.name === "blk.1.ffn_down.weight")!;
    bytes[t.offset + 17] ^= 0x40;
    writeFileSync(p, bytes);
  }, /tensor blk\.1\.ffn_down\.weight .* fails its checksum/);
  expectEngineError((d) => rmSync(join(d, "weights.bin")), /weights.bin is missing/);
});

test("bad input: options beyond what the engine was built for", () => {
  expectEngineError(() => {}, /asked for max-seqs 5, but the engine was built for 2/, (d) => Engine.load(d, { maxSeqs: 5 }));
  expectEngineError(() => {}, /max-batch-tokens 64/, (d) => Engine.load(d, { maxBatchTokens: 64 }));
  expectEngineError(() => {}, /max-seq-len 65/, (d) => Engine.load(d, { maxSeqLen: 65 }));
  const engine = Engine.load(build(), { blockSize: 4, numBlocks: 16 });
  const [big] = scenario(); // 8 tokens: fits
  engine.forward(big);
  const bigger = { ...big, numTokens: 9 };
  assert.throws(() => engine.forward(bigger), (e: unknown) => e instanceof EngineError && /exceeds the engine's maxBatchTokens 8/.test(e.message) && /--max-batch-tokens 9/.test(e.message));
});

test("a tensor written as parts (a packed tensor's q, pad, scales, zeros) is the bytes and checksum of encodePacked's one buffer", () => {
  const none = new Uint8Array(new Float32Array(0).buffer); // a K-quant's scales: an empty view of a zero-length buffer
  assert.equal(crc32Hex([Uint8Array.of(1, 2), Uint8Array.of(), Uint8Array.of(3, 4, 5), none]), crc32Hex(Uint8Array.of(1, 2, 3, 4, 5)), "empty parts change nothing");
  assert.equal(crc32Hex(new TextEncoder().encode("123456789")), "cbf43926"); // the CRC-32 check value
  const dir = mkdtempSync(join(tmpdir(), "llmrt-parts-"));
  try {
    const p = quantize(Float32Array.from({ length: 5 * 42 }, (_, i) => Math.sin(i)), 5, 42, "int4", { groupSize: 32, asym: true, scale: "f16" }); // odd q bytes: a pad before the scales
    const writer = new WeightsWriter(join(dir, "weights.bin"));
    const a = writer.add("a", "int4", [5, 42], encodePackedParts(p), p.layout);
    const b = writer.add("b", "int4", [5, 42], encodePacked(p), p.layout);
    const bytes = writer.close();
    assert.equal(a.length, b.length);
    assert.equal(a.checksum, b.checksum);
    const reader = new WeightsReader(dir, { weights: { file: "weights.bin", bytes, tensors: [a, b] } } as unknown as EngineManifest);
    try {
      assert.deepEqual(reader.read(a, true), encodePacked(p));
      assert.deepEqual(reader.read(b, true), encodePacked(p));
    } finally {
      reader.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * loadTokenizer: recognises files by content, accepts checkpoint TokenizerSources, and
 * names the file in every error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fixture } from "../helpers/fixtures.js";
import { detectTokenizerFile, loadTokenizer } from "../../src/tokenizer/load.js";
import { parseLlama2cTokenizer } from "../../src/tokenizer/llama2c.js";
import { tokenizerFromGguf } from "../../src/tokenizer/gguf.js";
import { loadSpmModel, parseSpmModelProto } from "../../src/tokenizer/spm-model.js";
import { TokenizerError } from "../../src/errors.js";

const tmp = () => mkdtempSync(join(tmpdir(), "llmrt-tokload-"));

test("files are recognised by content, whatever their name", async (t) => {
  const tok512 = fixture(t, "models/stories260K/tok512.bin");
  const gguf = fixture(t, "models/stories260K-gguf/stories260K.gguf");
  const model = fixture(t, "models/tokenizers/llama2/tokenizer.model");
  if (!tok512 || !gguf || !model) return;
  const dir = tmp();
  for (const [src, name, kind] of [[tok512, "a.dat", "llama2c"], [gguf, "b.dat", "gguf"], [model, "c.dat", "spm-model"]] as const) {
    copyFileSync(src, join(dir, name));
    assert.equal(detectTokenizerFile(join(dir, name)), kind);
  }
  const a = await loadTokenizer(join(dir, "a.dat"));
  const b = await loadTokenizer({ kind: "gguf", file: join(dir, "b.dat") });
  const c = await loadTokenizer({ kind: "llama2c", file: tok512 });
  for (const tok of [a, b, c]) assert.deepEqual(tok.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  // A directory with only tokenizer.model is read too.
  copyFileSync(model, join(dir, "tokenizer.model"));
  assert.equal((await loadTokenizer(dir)).vocabSize, 32000);
});

test("errors name the file and say what was expected", async () => {
  const dir = tmp();
  const garbage = join(dir, "garbage.bin");
  writeFileSync(garbage, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]));
  const isTokErr = (file: string, re: RegExp) => (e: unknown) => e instanceof TokenizerError && e.file === file && e.message.includes(file) && re.test(e.message);
  await assert.rejects(loadTokenizer(garbage), isTokErr(garbage, /not a tokenizer file/));
  await assert.rejects(loadTokenizer(join(dir, "nope")), isTokErr(join(dir, "nope"), /no such file/));
  await assert.rejects(loadTokenizer(dir), isTokErr(dir, /neither tokenizer.json nor tokenizer.model/));
  await assert.rejects(loadTokenizer({ kind: "none" }), TokenizerError);
  const notGguf = join(dir, "bad.gguf");
  writeFileSync(notGguf, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0, 0xff, 0xff])]));
  await assert.rejects(loadTokenizer(notGguf), isTokErr(notGguf, /GGUF/));
});

test("a truncated llama2.c tokenizer says which token and byte", (t) => {
  const p = fixture(t, "models/stories260K/tok512.bin");
  if (!p) return;
  const buf = readFileSync(p);
  assert.throws(() => parseLlama2cTokenizer(buf.subarray(0, 1000), "tok.bin"), (e: unknown) => e instanceof TokenizerError && /tok\.bin: token \d+: /.test(e.message));
  assert.equal(parseLlama2cTokenizer(buf, "tok.bin", { vocabSize: 300 }).vocabSize, 300);
});

test("GGUF metadata without a vocabulary, or with an unknown model or pre-tokenizer, is refused clearly", () => {
  const meta = (m: Record<string, unknown>) => ({ get: (k: string) => m[k] });
  assert.throws(() => tokenizerFromGguf(meta({}), "x.gguf"), /x\.gguf: no tokenizer\.ggml\.model/);
  assert.throws(() => tokenizerFromGguf(meta({ "tokenizer.ggml.model": "t5", "tokenizer.ggml.tokens": ["a"] }), "x.gguf"), /"t5" is not supported/);
  assert.throws(
    () => tokenizerFromGguf(meta({ "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.merges": [], "tokenizer.ggml.pre": "martian" }), "x.gguf"),
    /"martian" is not a pre-tokenizer/,
  );
  assert.throws(() => tokenizerFromGguf(meta({ "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "b"], "tokenizer.ggml.scores": [0] }), "x.gguf"), /1 entries for 2 tokens/);
});

test("GGUF byte-level BPE built from plain metadata: qwen2 and llama3 pre-tokenizers", () => {
  // A tiny vocabulary: single bytes of "ab 12" plus a few merges.
  const tokens = ["a", "b", "Ġ", "1", "2", "ab", "Ġa", "12", "<|im_start|>"];
  const meta = (pre: string) => ({
    get: (k: string) =>
      ({
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1, 1, 1, 1, 1, 1, 1, 1, 3],
        "tokenizer.ggml.merges": ["a b", "Ġ a", "1 2"],
        "tokenizer.ggml.eos_token_id": 8,
      })[k],
  });
  const qwen = tokenizerFromGguf(meta("qwen2"), "q.gguf");
  assert.deepEqual(qwen.encode("ab a12"), [5, 6, 3, 4]); // digits one by one
  const llama3 = tokenizerFromGguf(meta("llama-bpe"), "l.gguf");
  assert.deepEqual(llama3.encode("ab a12", { addBos: false }), [5, 6, 7]); // up to 3 digits together
  assert.equal(llama3.addBos, true);
  assert.deepEqual(qwen.encode("<|im_start|>ab", { parseSpecial: true }), [8, 5]);
  assert.deepEqual(qwen.eosIds, [8]);
  assert.equal(qwen.decode([8, 5, 6]), "ab a");
});

test("SentencePiece ModelProto reader: defaults, negative ids, non-BPE models refused", () => {
  // ModelProto { pieces: [{piece: "a"}], trainer_spec: {model_type: BPE, bos_id: -1} }
  const piece = [0x0a, 0x03, 0x0a, 0x01, 0x61];
  const trainer = [0x18, 0x02, 0xc8, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
  const m = parseSpmModelProto(Uint8Array.from([...piece, 0x12, trainer.length, ...trainer]), "t.model");
  assert.deepEqual([m.pieces, m.types, m.modelType, m.unkId, m.bosId, m.eosId, m.addDummyPrefix], [["a"], [1], 2, 0, -1, 2, true]);
  assert.throws(() => parseSpmModelProto(Uint8Array.from([0x0a, 0x09, 0x0a]), "t.model"), /t\.model: malformed protobuf/);
  const dir = tmp();
  writeFileSync(join(dir, "unigram.model"), Uint8Array.from(piece)); // model_type defaults to UNIGRAM
  assert.throws(() => loadSpmModel(join(dir, "unigram.model")), /UNIGRAM is not supported/);
});

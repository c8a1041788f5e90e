/**
 * tokenizer.json through hf.ts: tiny tokenizers written by the test (a Llama-style
 * Metaspace BPE with byte fallback, and a GPT-2-style byte-level BPE with an added
 * special token), plus the neighbouring config files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHfTokenizer } from "../../src/tokenizer/hf.js";
import { loadTokenizer } from "../../src/tokenizer/load.js";
import { TokenizerError } from "../../src/errors.js";

const SP = "\u2581";

/** A Llama-2-shaped tokenizer.json: Metaspace BPE over "hello", byte fallback for the rest. */
function llamaStyleJson() {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (const p of [SP, "h", "e", "l", "o", `${SP}h`, `${SP}he`, "ll", `${SP}hell`, `${SP}hello`]) vocab[p] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SP }, { type: "Replace", pattern: { String: " " }, content: SP }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: [`${SP} h`, `${SP}h e`, "l l", `${SP}he ll`, `${SP}hell o`],
    },
  };
}

function writeDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), "llmrt-tok-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === "string" ? content : JSON.stringify(content));
  return dir;
}

test("tokenizer.json (Metaspace BPE, byte fallback): encode, decode, BOS from the post-processor", async () => {
  const json = llamaStyleJson();
  const dir = writeDir({ "tokenizer.json": json });
  const tok = await loadTokenizer(dir);
  const id = (p: string) => json.model.vocab[p];
  assert.equal(tok.vocabSize, Object.keys(json.model.vocab).length);
  assert.equal(tok.bosId, null); // no tokenizer_config.json to name it
  const hello = id(`${SP}hello`);
  assert.deepEqual(tok.encode("hello hello"), [hello, hello]);
  // é is not in the vocabulary: its UTF-8 bytes C3 A9 come back as <0xC3> <0xA9>.
  assert.deepEqual(tok.encode("hé"), [id(`${SP}h`), 3 + 0xc3, 3 + 0xa9]);
  assert.equal(tok.decode([hello, hello]), "hello hello");
  assert.equal(tok.decode(tok.encode("hé")), "hé");
  assert.equal(tok.decode([]), "");
  assert.equal(tok.idToPiece(hello), `${SP}hello`);
});

test("tokenizer_config.json: bos/eos, add_bos_token, chat template; special tokens parsed only on request", () => {
  const dir = writeDir({
    "tokenizer.json": llamaStyleJson(),
    "tokenizer_config.json": { bos_token: "<s>", eos_token: { content: "</s>" }, add_bos_token: true, chat_template: "{{ bos_token }}{{ messages[0]['content'] }}" },
  });
  const tok = loadHfTokenizer(join(dir, "tokenizer.json"));
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2]);
  assert.equal(tok.addBos, true);
  assert.equal(tok.chatTemplate, "{{ bos_token }}{{ messages[0]['content'] }}");
  const hello = tok.encode("hello", { addBos: false })[0];
  assert.deepEqual(tok.encode("hello"), [1, hello]);
  assert.deepEqual(tok.encode("hello</s>", { addBos: false, parseSpecial: true }), [hello, 2]);
  assert.ok(!tok.encode("hello</s>", { addBos: false }).includes(2), "</s> as plain text is not the EOS token");
  assert.equal(tok.decode([1, hello, 2]), "hello");
  assert.equal(tok.decode([1, hello, 2], { skipSpecial: false }), "<s> hello</s>");
  assert.ok(tok.isSpecial(1) && tok.isSpecial(2) && !tok.isSpecial(hello));
});

test("special_tokens_map.json and generation_config.json fill in BOS and end-of-generation ids", () => {
  const dir = writeDir({
    "tokenizer.json": llamaStyleJson(),
    "special_tokens_map.json": { bos_token: { content: "<s>" }, eos_token: "</s>" },
    "generation_config.json": { eos_token_id: [2, 0] },
  });
  const tok = loadHfTokenizer(dir);
  assert.equal(tok.bosId, 1);
  assert.deepEqual(tok.eosIds, [2, 0]);
  assert.equal(tok.addBos, true, "the post-processor adds <s>");
});

test("byte-level BPE tokenizer.json with an added special token", () => {
  const chars = ["h", "i", "Ġ", "t", "e", "r", "!"];
  const vocab: Record<string, number> = {};
  for (const c of chars) vocab[c] = Object.keys(vocab).length;
  for (const p of ["hi", "Ġt", "Ġth", "er", "Ġther", "Ġthere"]) vocab[p] = Object.keys(vocab).length;
  const imStart = Object.keys(vocab).length;
  const json = {
    added_tokens: [{ id: imStart, content: "<|im_start|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, vocab, merges: ["h i", "Ġ t", "Ġt h", "e r", "Ġth er", "Ġther e"] },
  };
  const tok = loadHfTokenizer(writeDir({ "tokenizer.json": json }));
  assert.deepEqual(tok.encode("hi there!"), [vocab["hi"], vocab["Ġthere"], vocab["!"]]);
  assert.deepEqual(tok.encode("<|im_start|>hi", { parseSpecial: true }), [imStart, vocab["hi"]]);
  assert.ok(!tok.encode("<|im_start|>hi").includes(imStart));
  assert.equal(tok.decode(tok.encode("hi there!")), "hi there!");
  assert.equal(tok.addBos, false);
});

test("bad tokenizer.json files raise TokenizerError naming the file", () => {
  const dir = writeDir({ "tokenizer.json": "{ not json", "other.json": { hello: 1 } });
  assert.throws(() => loadHfTokenizer(dir), (e: unknown) => e instanceof TokenizerError && e.message.includes(join(dir, "tokenizer.json")) && /not valid JSON/.test(e.message));
  assert.throws(() => loadHfTokenizer(join(dir, "other.json")), (e: unknown) => e instanceof TokenizerError && /no "model" object/.test(e.message));
  assert.throws(() => loadHfTokenizer(join(dir, "missing", "tokenizer.json")), (e: unknown) => e instanceof TokenizerError && /not found/.test(e.message));
});

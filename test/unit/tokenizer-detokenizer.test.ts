/**
 * The incremental detokenizer on random token streams: the pushed pieces plus flush()
 * must equal decode(prompt ++ out) minus decode(prompt), including byte-fallback tokens
 * that split multi-byte characters, emoji, and the first token after BOS.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture } from "../helpers/fixtures.js";
import { IncrementalDetokenizer } from "../../src/tokenizer/detokenizer.js";
import { loadLlama2cTokenizer } from "../../src/tokenizer/llama2c.js";
import { loadGgufTokenizer } from "../../src/tokenizer/gguf.js";
import { HfTokenizer } from "../../src/tokenizer/hf.js";
import type { Tokenizer } from "../../src/tokenizer/types.js";

/** Small seeded PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ["the", " cat", " naïve", " café", "東京", " 🦙", "🚀", " 😶‍🌫️", "\n", "  ", "don't", " Ω", "ß", " x*2", "—", "é", "!"];

function randomText(r: () => number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += WORDS[Math.floor(r() * WORDS.length)];
  return s;
}

function streamed(tok: Tokenizer, prompt: number[], out: number[]): { got: string; want: string; pieces: string[] } {
  const d = new IncrementalDetokenizer(tok, prompt);
  const pieces = out.map((id) => d.push(id));
  pieces.push(d.flush());
  const full = tok.decode([...prompt, ...out]);
  const head = tok.decode(prompt);
  assert.ok(full.startsWith(head), "test setup: prompt text is a prefix of the full text");
  return { got: pieces.join(""), want: full.slice(head.length), pieces };
}

function checkRandomStreams(tok: Tokenizer, seed: number, randomIds: boolean): void {
  const r = rng(seed);
  for (let trial = 0; trial < 60; trial++) {
    const prompt = trial % 3 === 0 ? [] : tok.encode(randomText(r, Math.floor(r() * 4)), { addBos: trial % 3 === 1 });
    let out: number[];
    if (randomIds && trial % 2 === 0) {
      out = Array.from({ length: 1 + Math.floor(r() * 30) }, () => Math.floor(r() * tok.vocabSize));
    } else {
      out = tok.encode(randomText(r, 1 + Math.floor(r() * 8)), { addBos: false });
    }
    const { got, want } = streamed(tok, prompt, out);
    assert.equal(got, want, `trial ${trial}: prompt ${JSON.stringify(prompt)} out ${JSON.stringify(out)}`);
  }
}

test("detokenizer: Llama 2 SentencePiece vocab (byte fallback, emoji), random streams", (t) => {
  const p = fixture(t, "models/tokenizers/llama2/tokenizer.bin");
  if (!p) return;
  const tok = loadLlama2cTokenizer(p);
  checkRandomStreams(tok, 1, true);
  // 🦙 is four byte-fallback tokens: nothing comes out until the last one.
  const llama = tok.encode("🦙", { addBos: false }); // ▁ (dummy prefix), <0xF0>, <0x9F>, <0xA6>, <0x99>
  const { pieces } = streamed(tok, [1, ...tok.encode("Hi", { addBos: false })], llama);
  assert.deepEqual(pieces, [" ", "", "", "", "🦙", ""]);
});

test("detokenizer: the first token after BOS loses its dummy-prefix space, later ones keep theirs", (t) => {
  const p = fixture(t, "models/tokenizers/llama2/tokenizer.bin");
  if (!p) return;
  const tok = loadLlama2cTokenizer(p);
  const [once, upon] = tok.encode("Once upon", { addBos: false }); // ▁Once, ▁upon
  assert.deepEqual(streamed(tok, [1], [once, upon]).pieces, ["Once", " upon", ""]);
  assert.deepEqual(streamed(tok, [], [once, upon]).pieces, ["Once", " upon", ""]);
  const the = tok.encode("The", { addBos: false });
  assert.deepEqual(streamed(tok, [1, ...the], [once]).pieces, [" Once", ""]);
  // A long prompt: only its tail is looked at, the space is still kept.
  const long = tok.encode("word ".repeat(200));
  assert.deepEqual(streamed(tok, long, [once]).pieces, [" Once", ""]);
});

test("detokenizer: GPT-2 byte-level BPE (characters split across tokens), random streams", (t) => {
  const p = fixture(t, "models/tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
  if (!p) return;
  checkRandomStreams(loadGgufTokenizer(p), 2, true);
});

test("detokenizer: tokenizer.json (window mode), byte-fallback pieces and emoji", () => {
  const SP = "\u2581";
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  for (const w of [SP, "a", "b", `${SP}a`, `${SP}b`, "ab", `${SP}ab`]) vocab[w] = Object.keys(vocab).length;
  const tok = new HfTokenizer({
    source: "(test)",
    tokenizer: {
      added_tokens: [0, 1, 2].map((id) => ({ id, content: ["<unk>", "<s>", "</s>"][id], special: true, normalized: false, lstrip: false, rstrip: false, single_word: false })),
      normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: SP }, { type: "Replace", pattern: { String: " " }, content: SP }] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: SP }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
      model: { type: "BPE", unk_token: "<unk>", byte_fallback: true, fuse_unk: true, vocab, merges: [`${SP} a`, `${SP} b`, "a b", `${SP}a b`] },
    },
    config: { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
  });
  const r = rng(3);
  const pieces = ["a", "b", " ab", " a", "é", "🦙", "東", " "];
  for (let trial = 0; trial < 60; trial++) {
    const text = (n: number) => Array.from({ length: n }, () => pieces[Math.floor(r() * pieces.length)]).join("");
    const prompt = trial % 2 === 0 ? [1] : tok.encode(text(3));
    const out = tok.encode(text(1 + Math.floor(r() * 8)), { addBos: false });
    const { got, want } = streamed(tok, prompt, out);
    assert.equal(got, want, `trial ${trial}: ${JSON.stringify(out)}`);
  }
});

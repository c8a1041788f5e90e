/**
 * GGUF vocabularies against llama.cpp: golden/tokenizers.llamacpp.json (ids, ids with
 * special-token parsing, decoded text) and the .inp/.out vectors shipped beside each
 * vocab GGUF (made from Hugging Face tokenizers).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { loadGgufTokenizer } from "../../src/tokenizer/gguf.js";

interface LcppGolden {
  tokenizers: Record<string, { add_bos: boolean; bos: number; eos: number; cases: { text: string; ids: number[]; ids_parse_special: number[]; decoded: string }[] }>;
}

const VOCABS = ["ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"];
const DIR = "models/tokenizers/llama.cpp-vocab/";

for (const vocab of VOCABS) {
  test(`llama.cpp golden: ${vocab}`, (t) => {
    const paths = fixtures(t, "golden/tokenizers.llamacpp.json", DIR + vocab);
    if (!paths) return;
    const g = (JSON.parse(readFileSync(paths[0], "utf8")) as LcppGolden).tokenizers[vocab];
    const tok = loadGgufTokenizer(paths[1]);
    assert.equal(tok.addBos, g.add_bos);
    assert.equal(tok.bosId, g.bos);
    assert.equal(tok.eosIds[0], g.eos);
    let pass = 0;
    for (const c of g.cases) {
      const what = JSON.stringify(c.text);
      assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, `ids ${what}`);
      assert.deepEqual(tok.encode(c.text, { addBos: false, parseSpecial: true }), c.ids_parse_special, `ids_parse_special ${what}`);
      assert.equal(tok.decode(c.ids), c.decoded, `decoded ${what}`);
      const withBos = tok.encode(c.text);
      assert.deepEqual(withBos, g.add_bos ? [g.bos, ...c.ids] : c.ids);
      pass++;
    }
    assert.equal(pass, g.cases.length);
  });

  test(`llama.cpp test vectors: ${vocab}.inp/.out`, (t) => {
    const paths = fixtures(t, DIR + vocab, DIR + vocab + ".inp", DIR + vocab + ".out");
    if (!paths) return;
    const tok = loadGgufTokenizer(paths[0]);
    const inputs = readFileSync(paths[1], "utf8").split("\n__ggml_vocab_test__\n");
    const outputs = readFileSync(paths[2], "utf8").split("\n");
    assert.equal(inputs.length, outputs.length);
    assert.equal(inputs.length, 47);
    for (let i = 0; i < inputs.length; i++) {
      const want = outputs[i].trim() === "" ? [] : outputs[i].trim().split(/\s+/).map(Number);
      const got = tok.encode(inputs[i], { addBos: false });
      assert.deepEqual(got, want, `case ${i}: ${JSON.stringify(inputs[i]).slice(0, 60)}`);
      // Everything these vocabularies encode decodes back to the same text.
      if (vocab !== "ggml-vocab-llama-spm.gguf" || inputs[i].length > 0) assert.equal(tok.decode(got), inputs[i], `round trip ${i}`);
    }
  });
}

test("phi-3 GGUF: end-of-turn tokens end generation; special tokens swallow following whitespace (llama.cpp rstrip)", (t) => {
  const p = fixture(t, DIR + "ggml-vocab-phi-3.gguf");
  if (!p) return;
  const tok = loadGgufTokenizer(p);
  assert.deepEqual(tok.eosIds, [32000, 32007]); // <|endoftext|>, <|end|>
  assert.ok(tok.chatTemplate?.includes("<|user|>"));
  const ids = tok.encode("<|user|>\nHi<|end|>\n<|assistant|>\n", { addBos: false, parseSpecial: true });
  assert.deepEqual(ids, [32010, 6324, 32007, 32001]);
  assert.equal(tok.decode(ids), "Hi");
  assert.equal(tok.decode(ids, { skipSpecial: false }), "<|user|>Hi<|end|><|assistant|>");
});

test("gpt-2 GGUF: <|endoftext|> is only a token when parseSpecial", (t) => {
  const p = fixture(t, DIR + "ggml-vocab-gpt-2.gguf");
  if (!p) return;
  const tok = loadGgufTokenizer(p);
  assert.deepEqual(tok.encode("a<|endoftext|>b", { parseSpecial: true }), [64, 50256, 65]);
  const plain = tok.encode("a<|endoftext|>b");
  assert.ok(!plain.includes(50256));
  assert.equal(tok.decode(plain), "a<|endoftext|>b");
  assert.equal(tok.decode([64, 50256, 65]), "ab");
});

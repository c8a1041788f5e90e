/**
 * SentencePiece BPE against Google SentencePiece's own output (golden/tokenizers.sentencepiece.json)
 * through every way we read that vocabulary, and the stories260K goldens' prompts and texts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { loadLlama2cTokenizer } from "../../src/tokenizer/llama2c.js";
import { loadGgufTokenizer } from "../../src/tokenizer/gguf.js";
import { loadSpmModel } from "../../src/tokenizer/spm-model.js";
import { loadTokenizer } from "../../src/tokenizer/load.js";
import type { Tokenizer } from "../../src/tokenizer/types.js";

interface SpCase {
  text: string;
  ids: number[];
  pieces: string[];
  decoded: string;
}
interface SpGolden {
  tokenizers: Record<string, { model_file: string; bos_id: number; eos_id: number; unk_id: number; cases: SpCase[] }>;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

function checkCases(tok: Tokenizer, cases: SpCase[]): number {
  let pass = 0;
  for (const c of cases) {
    assert.deepEqual(tok.encode(c.text, { addBos: false }), c.ids, `encode ${JSON.stringify(c.text)}`);
    assert.deepEqual(c.ids.map((id) => tok.idToPiece(id)), c.pieces, `pieces of ${JSON.stringify(c.text)}`);
    assert.equal(tok.decode(c.ids), c.decoded, `decode ${JSON.stringify(c.text)}`);
    // With BOS in front, decode is unchanged (BOS is skipped, the dummy-prefix space still dropped).
    assert.equal(tok.decode([1, ...c.ids]), c.decoded);
    pass++;
  }
  return pass;
}

const LLAMA2_SOURCES: Record<string, string> = {
  "llama2.c tokenizer.bin": "models/tokenizers/llama2/tokenizer.bin",
  "GGUF ggml-vocab-llama-spm.gguf": "models/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf",
  "GGUF llama-2-tiny-random.gguf": "models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf",
  "SentencePiece tokenizer.model": "models/tokenizers/llama2/tokenizer.model",
};

for (const [label, rel] of Object.entries(LLAMA2_SOURCES)) {
  test(`sentencepiece golden: Llama 2 vocab via ${label}`, async (t) => {
    const paths = fixtures(t, "golden/tokenizers.sentencepiece.json", rel);
    if (!paths) return;
    const g = readJson<SpGolden>(paths[0]).tokenizers.llama2;
    const tok = await loadTokenizer(paths[1]);
    assert.equal(tok.vocabSize, 32000);
    assert.equal(tok.bosId, g.bos_id);
    assert.deepEqual(tok.eosIds, [g.eos_id]);
    assert.equal(tok.addBos, true);
    assert.equal(checkCases(tok, g.cases), g.cases.length);
  });
}

test("sentencepiece golden: Mistral v1 tokenizer.model", (t) => {
  const paths = fixtures(t, "golden/tokenizers.sentencepiece.json", "models/tokenizers/mistral/tokenizer.model.v1");
  if (!paths) return;
  const g = readJson<SpGolden>(paths[0]).tokenizers.mistral_v1;
  const tok = loadSpmModel(paths[1]);
  assert.equal(checkCases(tok, g.cases), g.cases.length);
});

test("the 32000-token Llama 2 vocabulary loads and encodes (load time reported)", (t) => {
  const paths = fixtures(t, "models/tokenizers/llama2/tokenizer.bin", "models/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
  if (!paths) return;
  for (const load of [() => loadLlama2cTokenizer(paths[0]), () => loadGgufTokenizer(paths[1])]) {
    const t0 = performance.now();
    const tok = load();
    assert.ok(tok.encode("warm up").length > 1);
    t.diagnostic(`loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  }
});

test("tok512.bin: 'Once upon a time' is [1, 403, 407, 261, 378]", (t) => {
  const p = fixture(t, "models/stories260K/tok512.bin");
  if (!p) return;
  const tok = loadLlama2cTokenizer(p);
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual(tok.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  assert.equal(tok.idToPiece(1), "<s>");
  assert.equal(tok.idToPiece(2), "</s>");
  assert.equal(tok.idToPiece(13), "<0x0A>");
});

const STORIES = ["once_upon_a_time", "lily_and_ben", "the_cat", "empty_prompt", "empty_prompt_256"];
const STORIES_VOCABS: Record<string, string> = {
  "tok512.bin": "models/stories260K/tok512.bin",
  "stories260K.gguf": "models/stories260K-gguf/stories260K.gguf",
};

for (const [vocabLabel, vocabRel] of Object.entries(STORIES_VOCABS)) {
  for (const impl of ["llama2c", "llamacpp"]) {
    test(`stories260K.${impl} goldens: prompt ids and output text with ${vocabLabel}`, async (t) => {
      const vocab = fixture(t, vocabRel);
      if (!vocab) return;
      const tok = await loadTokenizer(vocab);
      let checked = 0;
      for (const name of STORIES) {
        const p = fixture(t, `golden/stories260K.${impl}.${name}.json`);
        if (!p) return;
        const g = readJson<{ prompt: string; prompt_token_ids: number[]; output_token_ids: number[]; output_text: string }>(p);
        assert.deepEqual(tok.encode(g.prompt), g.prompt_token_ids, `${name}: prompt ids`);
        const all = tok.decode([...g.prompt_token_ids, ...g.output_token_ids]);
        const prompt = tok.decode(g.prompt_token_ids);
        assert.equal(prompt, g.prompt);
        assert.equal(all.slice(prompt.length), g.output_text, `${name}: output text`);
        checked++;
      }
      assert.equal(checked, STORIES.length);
    });
  }
}

test("parseSpecial splits <s> out and gives the following text a dummy prefix (llama.cpp)", (t) => {
  const p = fixture(t, "models/tokenizers/llama2/tokenizer.bin");
  if (!p) return;
  const tok = loadLlama2cTokenizer(p);
  assert.deepEqual(tok.encode("<s>[INST] hi [/INST]", { addBos: false, parseSpecial: true }), [1, 518, 25580, 29962, 7251, 518, 29914, 25580, 29962]);
  assert.deepEqual(tok.encode("<s>", { addBos: false }), [529, 29879, 29958]);
  assert.equal(tok.decode([1, 450, 2]), "The");
  assert.equal(tok.decode([1, 450, 2], { skipSpecial: false }), "<s>The</s>");
  assert.ok(tok.isSpecial(1) && tok.isSpecial(2) && tok.isSpecial(0) && !tok.isSpecial(450));
  // Unknown and out-of-range ids decode as sentencepiece does / to nothing.
  assert.equal(tok.decode([0]), " \u2047 ");
  assert.equal(tok.decode([-1, 99999]), "");
});

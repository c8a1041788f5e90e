import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/cli.js";
import { fixture, fixtures } from "../helpers/fixtures.js";
import { readGolden } from "../helpers/golden.js";

const MODELS: Record<string, string[]> = {
  "llama2.c directory": ["models/stories260K"],
  "llama2.c .bin + --tokenizer": ["models/stories260K/stories260K.bin", "models/stories260K/tok512.bin"],
  GGUF: ["models/stories260K-gguf/stories260K.gguf"],
  "HF safetensors + --tokenizer GGUF": ["models/derived/stories260K-hf", "models/stories260K-gguf/stories260K.gguf"],
};

for (const [name, rels] of Object.entries(MODELS)) {
  test(`llmrt generate --json on stories260K (${name}) reproduces the llama2.c golden`, (t) => {
    const paths = fixtures(t, ...rels, "golden/stories260K.llama2c.lily_and_ben.json");
    if (!paths) return;
    const g = readGolden(paths.at(-1)!);
    const args = ["generate", "--model", paths[0], "--prompt", g.prompt, "--temperature", "0", "--max-tokens", String(g.output_token_ids.length), "--json"];
    if (rels.length > 1) args.push("--tokenizer", paths[1]);
    const r = runCli(args);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    const out = JSON.parse(lines.at(-1)!);
    assert.deepEqual(out.prompt_token_ids, g.prompt_token_ids);
    assert.deepEqual(out.output_token_ids, g.output_token_ids);
    assert.equal(out.text, g.output_text);
    assert.equal(out.finish_reason, "length");
    assert.equal(typeof out.timings.decode_tokens_per_s, "number");
  });
}

test("llmrt generate streams only the continuation to stdout; stats go to stderr", (t) => {
  const paths = fixtures(t, "models/stories260K", "golden/stories260K.llama2c.the_cat.json");
  if (!paths) return;
  const g = readGolden(paths[1]);
  const r = runCli(["generate", "--model", paths[0], "--prompt", g.prompt, "--temperature", "0", "--max-tokens", "64"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, g.output_text + "\n");
  assert.match(r.stderr, /tok\/s/);
});

test("several --prompt flags and --prompts-file run as one batch, one JSON line per prompt in order", (t) => {
  const model = fixture(t, "models/stories260K");
  if (!model) return;
  const file = join(mkdtempSync(join(tmpdir(), "llmrt-")), "prompts.txt");
  writeFileSync(file, "The cat\nLily and Ben\n");
  const r = runCli(["generate", "--model", model, "--prompt", "Once upon a time", "--prompts-file", file, "--temperature", "0", "--max-tokens", "8", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const outs = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(outs.map((o) => o.prompt_token_ids), [[1, 403, 407, 261, 378], [1, 291, 280, 294], [1, 317, 269, 368, 302]]);
  for (const o of outs) assert.equal(o.output_token_ids.length, 8);
});

test("llmrt generate --stop ends at the stop string and leaves it out", (t) => {
  const model = fixture(t, "models/stories260K");
  if (!model) return;
  const r = runCli(["generate", "--model", model, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64", "--stop", "Lily", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim());
  assert.equal(out.text, ", there was a little girl named ");
  assert.equal(out.finish_reason, "stop");
});

test("the default model works offline and is labelled as random weights", () => {
  const r = runCli(["generate", "--prompt", "hi", "--max-tokens", "4", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /random weights/);
  assert.equal(JSON.parse(r.stdout.trim()).random_weights, true);
});

test("a missing model file is a one-line typed error, exit code 1, no stack", () => {
  const r = runCli(["generate", "--model", "/nonexistent/model.gguf", "--prompt", "x"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\/nonexistent\/model\.gguf/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
});

test("a bad numeric flag names the flag", () => {
  const r = runCli(["generate", "--max-tokens", "lots"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--max-tokens/);
});

/**
 * `llmrt generate --kv-dtype int8` end to end on stories260K: the reference and cpu
 * targets write the same bytes into the cache and so decode the same tokens, which
 * follow the f32 golden for its first tokens (int8 K/V may flip a near tie later on).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.js";
import { fixtures } from "../helpers/fixtures.js";
import { readGolden } from "../helpers/golden.js";

test("llmrt generate --kv-dtype int8 on stories260K: reference and cpu agree and follow the f32 golden's first 32 tokens", (t) => {
  const paths = fixtures(t, "models/stories260K", "golden/stories260K.llama2c.lily_and_ben.json");
  if (!paths) return;
  const g = readGolden(paths[1]);
  const outs = ["reference", "cpu"].map((target) => {
    const r = runCli(["generate", "--model", paths[0], "--prompt", g.prompt, "--temperature", "0", "--max-tokens", "64", "--json", "--kv-dtype", "int8", "--target", target, "--threads", "2"]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);
  });
  for (const o of outs) {
    assert.deepEqual(o.prompt_token_ids, g.prompt_token_ids);
    assert.equal(o.output_token_ids.length, 64);
    assert.deepEqual(o.output_token_ids.slice(0, 32), g.output_token_ids.slice(0, 32));
  }
  assert.deepEqual(outs[1].output_token_ids, outs[0].output_token_ids);
});

test("llmrt generate refuses an unknown --kv-dtype and lists int8 among the choices", () => {
  const r = runCli(["generate", "--model", "synthetic:tiny", "--prompt", "x", "--kv-dtype", "int4"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--kv-dtype.*int8/s);
});

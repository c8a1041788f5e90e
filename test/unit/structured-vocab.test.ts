/**
 * Masks over a real 32k vocabulary (Llama 2's SentencePiece, with byte-fallback
 * tokens that are half a character): random walks through allowed tokens until the
 * text is accepted must decode to valid output. Also reports mask times.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/runtime/rng.js";
import { compileConstraint, schemaValidator, type ConstraintSpec } from "../../src/structured/index.js";
import { loadTokenizer } from "../../src/tokenizer/index.js";
import type { Tokenizer } from "../../src/tokenizer/types.js";
import { fixture } from "../helpers/fixtures.js";

/** Walks random allowed tokens (end tokens only once nothing else fits, or by chance); returns the ids. */
function walk(tok: Tokenizer, spec: ConstraintSpec, rng: Rng, maxSteps = 300): { ids: number[]; accepted: boolean } {
  const st = compileConstraint(spec, tok).start();
  const ids: number[] = [];
  for (let i = 0; i < maxSteps; i++) {
    if (st.status() === "complete") return { ids, accepted: true };
    assert.notEqual(st.status(), "stuck");
    if (st.accepting && rng.nextFloat() < 0.3) return { ids, accepted: true };
    const m = st.mask;
    // pick the k-th allowed id
    let k = Math.floor(rng.nextFloat() * m.count);
    let id = -1;
    for (let w = 0; w < m.bits.length && id < 0; w++) {
      const c = popcount(m.bits[w]);
      if (k >= c) {
        k -= c;
        continue;
      }
      let x = m.bits[w];
      for (; k > 0; k--) x &= x - 1; // drop the k lowest set bits
      id = (w << 5) | (31 - Math.clz32(x & -x));
    }
    assert.ok(st.allows(id));
    st.advance(id);
    ids.push(id);
  }
  return { ids, accepted: false };
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

test("Llama 2 vocabulary: random walks under JSON-schema, json_object, regex and choice constraints end in valid text", async (t) => {
  const file = fixture(t, "models/tokenizers/llama2/tokenizer.bin");
  if (file === null) return;
  const tok = await loadTokenizer(file);
  const t0 = performance.now();
  compileConstraint({ type: "json_object" }, tok); // builds the vocabulary index
  const indexMs = performance.now() - t0;
  const schema = {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 10 },
      age: { type: "integer", minimum: 0, maximum: 120 },
      tags: { type: "array", items: { enum: ["a", "é", "日本"] }, maxItems: 3 },
      score: { type: "number", minimum: 0, maximum: 1 },
    },
    required: ["name", "tags"],
  };
  const validate = schemaValidator(schema);
  const rng = new Rng(11);
  let steps = 0;
  for (let i = 0; i < 8; i++) {
    const { ids, accepted } = walk(tok, { type: "json_schema", schema }, rng);
    if (!accepted) continue;
    steps += ids.length;
    const text = tok.decode(ids);
    const v = JSON.parse(text);
    assert.ok(validate(v), `${text}: ${JSON.stringify(validate.errors)}`);
  }
  for (let i = 0; i < 4; i++) {
    const { ids, accepted } = walk(tok, { type: "json_object" }, rng, 120);
    if (accepted) assert.equal(typeof JSON.parse(tok.decode(ids)), "object");
  }
  for (let i = 0; i < 4; i++) {
    const { ids, accepted } = walk(tok, { type: "regex", pattern: "[a-z]{2,8}@(mail|post)\\.(com|org)" }, rng);
    if (accepted) assert.match(tok.decode(ids), /^[a-z]{2,8}@(mail|post)\.(com|org)$/);
  }
  const choices = ["Paris", "London", "Zürich", "東京"];
  for (let i = 0; i < 6; i++) {
    const { ids, accepted } = walk(tok, { type: "choice", choices }, rng);
    assert.ok(accepted && choices.includes(tok.decode(ids)), tok.decode(ids));
  }
  const c = compileConstraint({ type: "json_schema", schema }, tok);
  const perMask = c.stats.computeMs / c.stats.computed;
  t.diagnostic(`32k vocab: index ${indexMs.toFixed(0)} ms once; ${c.stats.computed} masks at ${perMask.toFixed(2)} ms each, ${c.stats.hits} cache hits, ${steps} tokens`);
  assert.ok(perMask < 50, `mask computation is ${perMask.toFixed(1)} ms`);
});

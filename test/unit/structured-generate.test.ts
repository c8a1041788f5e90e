/**
 * Structured output end to end on a random-weight model (synthetic:tiny, a printable
 * ASCII char tokenizer): whatever the model would say, every output that stops is a
 * match that parses and validates, and a max_tokens cut says "length".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LLM } from "../../src/api/llm.js";
import { OptionError } from "../../src/errors.js";
import { Rng } from "../../src/runtime/rng.js";
import { schemaValidator } from "../../src/structured/index.js";
import { randomObject, randomSchema } from "../helpers/random-schema.js";

const load = () => LLM.load("synthetic:tiny", { maxSeqs: 32, maxSeqLen: 256, maxBatchTokens: 1024 });

test("100 random schemas: every output that stopped parses and validates; cut ones say length", async () => {
  const llm = await load();
  const rng = new Rng(2024);
  const schemas = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? randomObject(rng, 0) : randomSchema(rng)));
  const counts = { stop: 0, length: 0 };
  await Promise.all(
    schemas.map(async (schema, i) => {
      const [r] = await llm.generate(`Answer in JSON (${i}):`, { temperature: 1, seed: 1000 + i, maxTokens: 96, constraint: { type: "json_schema", schema } });
      const out = r.outputs[0];
      const where = `schema ${i} ${JSON.stringify(schema)}\n  output ${JSON.stringify(out.text)}`;
      if (out.finishReason === "length") {
        assert.equal(out.tokenIds.length, 96, where);
        counts.length++;
        return;
      }
      assert.equal(out.finishReason, "stop", where);
      let value: unknown;
      assert.doesNotThrow(() => (value = JSON.parse(out.text)), where);
      const validate = schemaValidator(schema);
      assert.ok(validate(value), `${where}\n  ${JSON.stringify(validate.errors)}`);
      counts.stop++;
    }),
  );
  assert.ok(counts.stop >= 70, `most outputs finish (${JSON.stringify(counts)})`);
  llm.close();
});

test("json_object: outputs that stop are JSON objects; a tiny budget is cut with length", async () => {
  const llm = await load();
  const outs = await llm.generate(Array(6).fill("JSON:"), { temperature: 1, maxTokens: 64, seed: 5, n: 1, constraint: { type: "json_object" } });
  for (const r of outs) {
    const o = r.outputs[0];
    if (o.finishReason === "stop") assert.equal(typeof JSON.parse(o.text), "object", o.text);
    else assert.equal(o.finishReason, "length");
  }
  const [cut] = await llm.generate("JSON:", { temperature: 1, maxTokens: 3, seed: 1, constraint: { type: "json_schema", schema: { type: "object", properties: { a: { type: "string" } }, required: ["a"] } } });
  assert.equal(cut.outputs[0].finishReason, "length");
  assert.equal(cut.outputs[0].text, '{"a');
  llm.close();
});

test("regex and choice constraints: outputs match; greedy is deterministic; n samples each obey", async () => {
  const llm = await load();
  const [re] = await llm.generate("Date:", { temperature: 1, seed: 9, maxTokens: 40, n: 4, constraint: { type: "regex", pattern: "^20[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9]$" } });
  for (const o of re.outputs) {
    assert.equal(o.finishReason, "stop");
    assert.match(o.text, /^20[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9]$/);
  }
  const choices = ["yes", "no", "maybe", "no way"];
  const [ch] = await llm.generate("Q:", { temperature: 1, seed: 2, maxTokens: 10, n: 6, constraint: { type: "choice", choices } });
  for (const o of ch.outputs) assert.ok(choices.includes(o.text) && o.finishReason === "stop", o.text);
  const [g1] = await llm.generate("Q:", { temperature: 0, maxTokens: 10, constraint: { type: "choice", choices } });
  const [g2] = await llm.generate("Q:", { temperature: 0, maxTokens: 10, constraint: { type: "choice", choices } });
  assert.equal(g1.outputs[0].text, g2.outputs[0].text);
  llm.close();
});

test("invalid constraints are OptionErrors naming the field and the reason", async () => {
  const llm = await load();
  const bad: [unknown, RegExp][] = [
    [{ type: "json_schema", schema: { type: "strin" } }, /constraint\.schema: invalid JSON schema/],
    [{ type: "json_schema", schema: { type: "object", properties: { a: { type: "string", minLength: -1 } } } }, /invalid JSON schema/],
    [{ type: "json_schema", schema: { type: "array", uniqueItems: true } }, /"uniqueItems" is not supported/],
    [{ type: "json_schema", schema: { $defs: { n: { type: "object", properties: { next: { $ref: "#/$defs/n" } } } }, $ref: "#/$defs/n" } }, /recursive \$ref/],
    [{ type: "regex", pattern: "(a" }, /constraint\.pattern: invalid regular expression/],
    [{ type: "regex", pattern: "a(?=b)" }, /assertions/],
    [{ type: "choice", choices: [] }, /constraint\.choices/],
    [{ type: "grammar", grammar: "x" }, /constraint\.type/],
  ];
  for (const [constraint, msg] of bad) {
    await assert.rejects(llm.generate("x", { constraint: constraint as never }), (e: unknown) => e instanceof OptionError && msg.test(e.message), JSON.stringify(constraint));
  }
  llm.close();
});

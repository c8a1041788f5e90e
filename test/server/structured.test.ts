/**
 * response_format through the server on a random-weight model: every output that
 * stops parses and validates (streamed or not), cut ones say "length", and a bad
 * schema is a 400 naming response_format, also when the engine thread refuses it.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { LlmrtError } from "../../src/errors.js";
import { Rng } from "../../src/runtime/rng.js";
import { GenerationRun } from "../../src/server/openai/generation.js";
import { ApiError } from "../../src/server/openai/errors.js";
import type { ServerMetrics } from "../../src/server/metrics.js";
import type { RunningServer } from "../../src/server/server.js";
import type { WorkerLLM } from "../../src/server/worker-llm.js";
import { WorkerError } from "../../src/server/worker-protocol.js";
import { schemaValidator } from "../../src/structured/index.js";
import { randomObject, randomSchema } from "../helpers/random-schema.js";
import { postJson, postSse, startTestServer, streamedTexts } from "./helpers.js";

let s: RunningServer;
before(async () => {
  s = await startTestServer({ maxSeqs: 32, maxSeqLen: 256, maxBatchTokens: 1024 });
});
after(() => s.close(1000));

const MAX = 96;
const rf = (schema: unknown) => ({ type: "json_schema", json_schema: { name: "out", schema, strict: true } });

function check(schema: Record<string, unknown>, text: string, finish: string, where: string): "stop" | "length" {
  if (finish === "length") return "length";
  assert.equal(finish, "stop", where);
  let value: unknown;
  assert.doesNotThrow(() => (value = JSON.parse(text)), where);
  const validate = schemaValidator(schema);
  assert.ok(validate(value), `${where}\n  ${JSON.stringify(validate.errors)}`);
  return "stop";
}

test("20 random schemas, chat and completions, streamed and not: outputs that stop validate", async () => {
  const rng = new Rng(77);
  const schemas = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? randomObject(rng, 0) : randomSchema(rng)));
  const counts = { stop: 0, length: 0 };
  await Promise.all(
    schemas.map(async (schema, i) => {
      const common = { temperature: 1, seed: 500 + i, max_tokens: MAX, response_format: rf(schema) };
      const where = (kind: string, text: string) => `${kind} schema ${i} ${JSON.stringify(schema)}\n  output ${JSON.stringify(text)}`;
      const mode = i % 4;
      if (mode === 0) {
        const r = await postJson(`${s.url}/v1/chat/completions`, { ...common, messages: [{ role: "user", content: `JSON ${i}` }] });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const c = r.body.choices[0];
        counts[check(schema, c.message.content, c.finish_reason, where("chat", c.message.content))]++;
      } else if (mode === 1) {
        const r = await postJson(`${s.url}/v1/completions`, { ...common, prompt: `JSON ${i}:` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const c = r.body.choices[0];
        counts[check(schema, c.text, c.finish_reason, where("completion", c.text))]++;
      } else {
        const url = mode === 2 ? `${s.url}/v1/chat/completions` : `${s.url}/v1/completions`;
        const body = mode === 2 ? { ...common, stream: true, messages: [{ role: "user", content: `JSON ${i}` }] } : { ...common, stream: true, prompt: `JSON ${i}:` };
        const r = await postSse(url, body);
        assert.equal(r.status, 200);
        const text = streamedTexts(r.events)[0] ?? "";
        const finish = r.events.filter((e) => e !== "[DONE]").flatMap((e) => e.choices).find((c: any) => c.finish_reason)?.finish_reason;
        counts[check(schema, text, finish, where("stream", text))]++;
      }
    }),
  );
  assert.ok(counts.stop >= 12, `most outputs finish (${JSON.stringify(counts)})`);
});

test("json_object and text; a tiny budget is cut with length", async () => {
  const r = await postJson(`${s.url}/v1/completions`, { prompt: "JSON:", temperature: 1, seed: 3, max_tokens: 64, n: 4, response_format: { type: "json_object" } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (const c of r.body.choices) {
    if (c.finish_reason === "stop") assert.equal(typeof JSON.parse(c.text), "object", c.text);
    else assert.equal(c.finish_reason, "length");
  }
  const t = await postJson(`${s.url}/v1/completions`, { prompt: "Hi", max_tokens: 4, response_format: { type: "text" } });
  assert.equal(t.status, 200);
  const cut = await postJson(`${s.url}/v1/chat/completions`, {
    messages: [{ role: "user", content: "x" }],
    max_tokens: 3,
    response_format: rf({ type: "object", properties: { a: { type: "string" } }, required: ["a"] }),
  });
  assert.equal(cut.status, 200);
  assert.equal(cut.body.choices[0].finish_reason, "length");
  assert.equal(cut.body.choices[0].message.content, '{"a');
});

test("invalid response_format -> 400 naming the field and the reason, streamed or not", async () => {
  for (const stream of [false, true]) {
    const bad = await postJson(`${s.url}/v1/chat/completions`, { stream, messages: [{ role: "user", content: "x" }], response_format: rf({ type: "strnig" }) });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(bad.body.error.param, /^response_format/);
    assert.match(bad.body.error.message, /invalid JSON schema/);
  }
  const type = await postJson(`${s.url}/v1/completions`, { prompt: "x", response_format: { type: "yaml" } });
  assert.equal(type.status, 400);
  assert.equal(type.body.error.param, "response_format.type");
  const missing = await postJson(`${s.url}/v1/completions`, { prompt: "x", response_format: { type: "json_schema" } });
  assert.equal(missing.status, 400);
  assert.equal(missing.body.error.param, "response_format.json_schema");
});

test("an OptionError raised on the engine thread for the constraint becomes a 400 naming the request field", async () => {
  const llm = {
    // eslint-disable-next-line require-yield
    async *generateStream() {
      throw new WorkerError({ name: "OptionError", code: "option", option: "constraint", message: "constraint: no token of this model's vocabulary can start an output that satisfies the constraint\n  hint: try another" });
    },
  } as unknown as WorkerLLM;
  const metrics = {} as ServerMetrics;
  const run = new GenerationRun(llm, metrics, [{ promptTokenIds: [1], params: {} }], 1, new AbortController().signal, 0, "response_format");
  await assert.rejects(run.opened(), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 400);
    assert.equal(e.param, "response_format");
    assert.match(e.message, /^response_format: no token .* \(hint: try another\)$/);
    return true;
  });
  // other errors pass through untouched
  const other = new GenerationRun({ async *generateStream() { throw new LlmrtError("worker", "gone"); } } as unknown as WorkerLLM, metrics, [{ promptTokenIds: [1], params: {} }], 1, new AbortController().signal, 0, "response_format");
  await assert.rejects(other.opened(), (e: unknown) => e instanceof LlmrtError && !(e instanceof ApiError));
});

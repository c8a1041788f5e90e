import { test } from "node:test";
import assert from "node:assert/strict";
import { OptionError } from "../../src/errors.js";
import { DEFAULT_SAMPLING_PARAMS, normalizeSamplingParams, type SamplingParamsInput } from "../../src/runtime/sampling-params.js";

test("defaults are filled in and documented values hold", () => {
  const p = normalizeSamplingParams({});
  assert.deepEqual(p, { ...DEFAULT_SAMPLING_PARAMS });
  assert.equal(p.maxTokens, 256);
  assert.equal(p.temperature, 1);
  assert.equal(p.logprobs, null);
  assert.deepEqual(normalizeSamplingParams(), p);
  // undefined means default, as when spreading partial option objects
  assert.equal(normalizeSamplingParams({ temperature: undefined }).temperature, 1);
});

test("inputs are normalised: topK -1, a single stop string, null seed, logit bias keys", () => {
  const p = normalizeSamplingParams({ topK: -1, stop: "\n\n", seed: null, logitBias: { 5: 2.5, 0: -100 }, temperature: 0, logprobs: 3 });
  assert.equal(p.topK, 0);
  assert.deepEqual(p.stop, ["\n\n"]);
  assert.equal(p.seed, undefined);
  assert.deepEqual(p.logitBias, { 0: -100, 5: 2.5 });
  assert.equal(p.temperature, 0);
  assert.equal(p.logprobs, 3);
  // JSON bodies give logit-bias keys as strings
  assert.deepEqual(normalizeSamplingParams(JSON.parse('{"logitBias": {"17": 1}}')).logitBias, { 17: 1 });
  assert.equal(normalizeSamplingParams({ seed: -3 }).seed, -3);
});

test("every bad field is rejected with an OptionError naming field, value and range", () => {
  const cases: [SamplingParamsInput | Record<string, unknown>, string, RegExp][] = [
    [{ maxTokens: 0 }, "maxTokens", /got 0; expected an integer >= 1/],
    [{ maxTokens: 2.5 }, "maxTokens", /2\.5/],
    [{ temperature: -0.1 }, "temperature", /-0\.1.*>= 0/],
    [{ temperature: NaN }, "temperature", /NaN/],
    [{ temperature: Infinity }, "temperature", /Infinity/],
    [{ topK: -2 }, "topK", /-2.*0 or -1 = off/],
    [{ topK: 1.5 }, "topK", /1\.5/],
    [{ topP: 0 }, "topP", /got 0.*\(0, 1\]/],
    [{ topP: 1.01 }, "topP", /1\.01/],
    [{ minP: -0.5 }, "minP", /\[0, 1\]/],
    [{ minP: 2 }, "minP", /got 2/],
    [{ repetitionPenalty: 0 }, "repetitionPenalty", /> 0/],
    [{ presencePenalty: 2.5 }, "presencePenalty", /\[-2, 2\]/],
    [{ frequencyPenalty: -3 }, "frequencyPenalty", /-3/],
    [{ seed: 1.5 }, "seed", /safe integer/],
    [{ seed: "7" as unknown as number }, "seed", /"7"/],
    [{ stop: 5 as unknown as string }, "stop", /string or an array/],
    [{ stop: ["ok", ""] }, "stop[1]", /non-empty string/],
    [{ stopTokenIds: [1, -1] }, "stopTokenIds[1]", /-1.*token id/],
    [{ stopTokenIds: 3 as unknown as number[] }, "stopTokenIds", /array/],
    [{ ignoreEos: 1 as unknown as boolean }, "ignoreEos", /true or false/],
    [{ logitBias: { 3: 101 } }, "logitBias[3]", /101.*\[-100, 100\]/],
    [{ logitBias: JSON.parse('{"-4": 1}') }, "logitBias", /"-4".*token-id keys/],
    [{ logitBias: [] as unknown as Record<number, number> }, "logitBias", /an array/],
    [{ n: 0 }, "n", /\[1, 1024\]/],
    [{ logprobs: 21 }, "logprobs", /null or an integer in \[0, 20\]/],
    [{ logprobs: -1 }, "logprobs", /-1/],
  ];
  for (const [input, field, msg] of cases) {
    assert.throws(
      () => normalizeSamplingParams(input as SamplingParamsInput),
      (e: unknown) => {
        assert.ok(e instanceof OptionError, `${field}: not an OptionError`);
        assert.equal(e.option, field);
        assert.equal(e.code, "option");
        assert.match(e.message, new RegExp(`^${field.replace(/[[\]]/g, "\\$&")}: `));
        assert.match(e.message, msg);
        return true;
      },
      `${JSON.stringify(input)} should be rejected`,
    );
  }
});

test("unknown options are rejected, with a camelCase hint for snake_case names", () => {
  assert.throws(
    () => normalizeSamplingParams({ max_tokens: 5 } as SamplingParamsInput),
    (e: unknown) => e instanceof OptionError && e.option === "max_tokens" && /use "maxTokens"/.test(e.message),
  );
  assert.throws(
    () => normalizeSamplingParams({ temprature: 1 } as SamplingParamsInput),
    (e: unknown) => e instanceof OptionError && /known options: .*temperature/.test(e.message),
  );
});

/**
 * How one request picks its tokens. Names follow vLLM / the OpenAI API in camelCase;
 * every field has a documented default, and `normalizeSamplingParams` fills them in
 * and rejects bad values with an OptionError naming the field, value and range.
 */
import { OptionError } from "../errors.js";
import { normalizeConstraint, type ConstraintSpec } from "../structured/spec.js";

export interface SamplingParams {
  /** Most tokens to generate. Default 256 (vLLM's 16 is too short for CLI use). */
  maxTokens: number;
  /** Softmax temperature, >= 0. 0 = greedy (argmax, ties -> lowest id). Default 1. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 (or -1 on input) = off. Default 0. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose mass reaches p, in (0, 1]; 1 = off. Default 1. */
  topP: number;
  /** Drop tokens whose probability is below minP * (top probability), in [0, 1]; 0 = off. Default 0. */
  minP: number;
  /**
   * HF / llama.cpp repetition penalty over tokens seen in prompt + output: positive
   * logits are divided by it, negative ones multiplied. > 0; 1 = off. Default 1.
   */
  repetitionPenalty: number;
  /** OpenAI presence penalty, subtracted once from tokens already in the output. [-2, 2]. Default 0. */
  presencePenalty: number;
  /** OpenAI frequency penalty, subtracted per occurrence in the output. [-2, 2]. Default 0. */
  frequencyPenalty: number;
  /** Same seed (and same model and prompt) => same output. Undefined = random. */
  seed?: number;
  /** Stop strings; the matched string is not part of the output. Default []. */
  stop: string[];
  /** Token ids that end generation (in addition to EOS). Default []. */
  stopTokenIds: number[];
  /** Keep generating past EOS (benchmarks). Default false. */
  ignoreEos: boolean;
  /** Added to the logit of each token id before anything else; values in [-100, 100]. Default {}. */
  logitBias: Record<number, number>;
  /** Completions to return for the prompt. Default 1. */
  n: number;
  /**
   * null = no logprobs (default). A number N in [0, 20] = return the sampled token's
   * logprob plus the N most likely alternatives. Logprobs are of the raw model
   * distribution (before bias, penalties, temperature and truncation), as vLLM does.
   */
  logprobs: number | null;
  /**
   * null = none (default). N in [0, 20] = also return, for every prompt token after
   * the first, its logprob given the tokens before it, plus the N most likely
   * alternatives. Such a request computes its whole prompt (no prefix-cache reuse).
   */
  promptLogprobs: number | null;
  /**
   * Structured output: every token is masked so the text can still become a match, and
   * generation stops once it is a complete one that nothing may extend. Undefined = free
   * text (default). A bad schema or pattern is an OptionError at normalization.
   */
  constraint?: ConstraintSpec;
}

/** What callers may pass: any subset, and `stop` may be a single string as in the OpenAI API. */
export type SamplingParamsInput = Partial<Omit<SamplingParams, "stop" | "seed" | "logprobs" | "promptLogprobs" | "constraint">> & {
  constraint?: ConstraintSpec | null;
  promptLogprobs?: number | null;
  stop?: string | string[];
  seed?: number | null;
  logprobs?: number | null;
};

export const MAX_LOGPROBS = 20;

export const DEFAULT_SAMPLING_PARAMS: Readonly<SamplingParams> = Object.freeze({
  maxTokens: 256,
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: undefined,
  stop: [],
  stopTokenIds: [],
  ignoreEos: false,
  logitBias: {},
  n: 1,
  logprobs: null,
  promptLogprobs: null,
  constraint: undefined,
});

const KNOWN = new Set(Object.keys(DEFAULT_SAMPLING_PARAMS));

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}

function bad(field: string, value: unknown, expected: string, hint?: string): never {
  throw new OptionError(field, `got ${show(value)}; expected ${expected}`, hint);
}

function num(field: string, v: unknown, lo: number, hi: number, expected: string, opts: { int?: boolean; loOpen?: boolean } = {}): number {
  if (typeof v !== "number" || !Number.isFinite(v) || (opts.int && !Number.isInteger(v))) bad(field, v, expected);
  if (opts.loOpen ? v <= lo : v < lo) bad(field, v, expected);
  if (v > hi) bad(field, v, expected);
  return v;
}

function tokenId(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) bad(field, v, "a token id (an integer >= 0)");
  return v;
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
const SNAKE_TO_CAMEL = new Map([...KNOWN].map((k) => [snake(k), k]));

/** Fills in defaults and validates every field; throws OptionError naming the first bad field. */
export function normalizeSamplingParams(p: SamplingParamsInput = {}): SamplingParams {
  if (typeof p !== "object" || p === null || Array.isArray(p)) bad("samplingParams", p, "an object");
  for (const k of Object.keys(p)) {
    if (KNOWN.has(k)) continue;
    const camel = SNAKE_TO_CAMEL.get(k);
    throw new OptionError(k, "unknown sampling option", camel ? `use "${camel}" (camelCase)` : `known options: ${[...KNOWN].join(", ")}`);
  }
  // `undefined` means "use the default", as when spreading partial option objects.
  const get = <K extends keyof SamplingParams>(k: K): unknown => ((p as Record<string, unknown>)[k] === undefined ? DEFAULT_SAMPLING_PARAMS[k] : (p as Record<string, unknown>)[k]);

  const maxTokens = num("maxTokens", get("maxTokens"), 1, Number.MAX_SAFE_INTEGER, "an integer >= 1", { int: true });
  const temperature = num("temperature", get("temperature"), 0, Infinity, "a finite number >= 0 (0 = greedy)");
  let topK = num("topK", get("topK"), -1, 0x7fffffff, "an integer >= 0 (0 or -1 = off)", { int: true });
  if (topK === -1) topK = 0;
  const topP = num("topP", get("topP"), 0, 1, "a number in (0, 1] (1 = off)", { loOpen: true });
  const minP = num("minP", get("minP"), 0, 1, "a number in [0, 1] (0 = off)");
  const repetitionPenalty = num("repetitionPenalty", get("repetitionPenalty"), 0, Infinity, "a finite number > 0 (1 = off)", { loOpen: true });
  const presencePenalty = num("presencePenalty", get("presencePenalty"), -2, 2, "a number in [-2, 2] (0 = off)");
  const frequencyPenalty = num("frequencyPenalty", get("frequencyPenalty"), -2, 2, "a number in [-2, 2] (0 = off)");

  const seedIn = get("seed");
  let seed: number | undefined;
  if (seedIn !== null && seedIn !== undefined) {
    if (typeof seedIn !== "number" || !Number.isSafeInteger(seedIn)) bad("seed", seedIn, "a safe integer (or undefined for a random seed)");
    seed = seedIn;
  }

  let stopIn = get("stop");
  if (typeof stopIn === "string") stopIn = [stopIn];
  if (!Array.isArray(stopIn)) bad("stop", stopIn, "a string or an array of strings");
  const stop = stopIn.map((s, i) => {
    if (typeof s !== "string" || s.length === 0) bad(`stop[${i}]`, s, "a non-empty string");
    return s;
  });

  const stopIdsIn = get("stopTokenIds");
  if (!Array.isArray(stopIdsIn)) bad("stopTokenIds", stopIdsIn, "an array of token ids");
  const stopTokenIds = stopIdsIn.map((t, i) => tokenId(`stopTokenIds[${i}]`, t));

  const ignoreEos = get("ignoreEos");
  if (typeof ignoreEos !== "boolean") bad("ignoreEos", ignoreEos, "true or false");

  const biasIn = get("logitBias");
  if (typeof biasIn !== "object" || biasIn === null || Array.isArray(biasIn)) bad("logitBias", biasIn, "an object mapping token ids to numbers");
  const logitBias: Record<number, number> = {};
  for (const [k, v] of Object.entries(biasIn)) {
    // Keys arrive as strings (JSON objects); accept only canonical integer spellings.
    if (!/^(0|[1-9]\d*)$/.test(k) || Number(k) > 0x7fffffff) bad("logitBias", k, "token-id keys (integers >= 0)");
    logitBias[Number(k)] = num(`logitBias[${k}]`, v, -100, 100, "a number in [-100, 100]");
  }

  const n = num("n", get("n"), 1, 1024, "an integer in [1, 1024]", { int: true });

  const lpIn = get("logprobs");
  const logprobs = lpIn === null ? null : num("logprobs", lpIn, 0, MAX_LOGPROBS, `null or an integer in [0, ${MAX_LOGPROBS}]`, { int: true });

  const plpIn = get("promptLogprobs");
  const promptLogprobs = plpIn === null ? null : num("promptLogprobs", plpIn, 0, MAX_LOGPROBS, `null or an integer in [0, ${MAX_LOGPROBS}]`, { int: true });

  const cIn = get("constraint");
  const constraint = cIn === null || cIn === undefined ? undefined : normalizeConstraint(cIn, "constraint").spec;

  return {
    maxTokens, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty,
    seed, stop, stopTokenIds, ignoreEos, logitBias, n, logprobs, promptLogprobs, constraint,
  };
}

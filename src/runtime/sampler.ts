/**
 * Picks the next token of one sequence from its logits row.
 *
 * Order (as vLLM / HF): logit bias -> repetition, frequency, presence penalties ->
 * greedy argmax if temperature is 0, else temperature -> top-k -> top-p -> min-p ->
 * draw from the renormalised distribution.
 *
 * The input row is never modified: bias and penalties go into a shared scratch copy
 * (only when there is something to apply), so callers may pass a subarray view of
 * the batch's logits buffer. Scratch is module-level because sampling is synchronous
 * and one sampler per sequence with vocab-sized buffers would cost megabytes each.
 *
 * Cost per step: a few O(vocab) passes plus O(distinct seen tokens) for penalties.
 * Top-k keeps a size-k heap (one compare per token in the common case); top-p
 * without top-k buckets candidates by logit and sorts only the bucket where the
 * mass crosses p. Nothing sorts the whole vocabulary.
 */
import { LlmrtError, OptionError } from "../errors.js";
import { Rng } from "./rng.js";
import type { SamplingParams } from "./sampling-params.js";

export interface TopLogprob {
  token: number;
  logprob: number;
}

export interface SampleResult {
  token: number;
  /** log P(token) under the raw model distribution; present iff params.logprobs !== null. */
  logprob?: number;
  /** The params.logprobs most likely tokens of the raw distribution, most likely first; present iff params.logprobs > 0. */
  topLogprobs?: TopLogprob[];
}

export interface SampleContext {
  /**
   * Count the sampled token towards penalties (default true). Pass false when the
   * token may be discarded (speculative drafts) and call `accept` for the kept ones.
   */
  record?: boolean;
}

export interface SamplerOptions {
  /** Prompt token ids; the repetition penalty covers them as well as the output. */
  promptTokens?: ArrayLike<number>;
  /** Which of params.n completions this is: with a seed, each gets its own stream of random numbers. */
  stream?: number;
  /** Supply a generator directly (tests, resuming); overrides seed and stream. */
  rng?: Rng;
  /** Structured output: sets the logits of tokens that may not come next to -Infinity, after bias and penalties. */
  mask?: LogitsMask;
}

/** Something that knows, right now, which tokens may come next (a ConstraintState). */
export interface LogitsMask {
  applyMask(x: Float32Array): void;
}

let work = new Float32Array(0); // logits after bias and penalties
let ids = new Int32Array(0); // candidate token ids
let wts = new Float64Array(0); // candidate weights exp((logit - max) / T)

function ensureScratch(V: number): void {
  if (ids.length >= V) return;
  work = new Float32Array(V);
  ids = new Int32Array(V);
  wts = new Float64Array(V);
}

export class Sampler {
  readonly rng: Rng;
  /** Token -> times it was sampled. Prompt tokens sit here with count 0 when the repetition penalty needs them. */
  private readonly counts = new Map<number, number>();
  private readonly tracksCounts: boolean;
  private readonly biasIds: Int32Array;
  private readonly biasVals: Float32Array;
  private checkedVocab = -1;
  private readonly mask: LogitsMask | undefined;

  /** `params` must come from normalizeSamplingParams. */
  constructor(
    readonly params: SamplingParams,
    opts: SamplerOptions = {},
  ) {
    this.rng = opts.rng ?? new Rng(params.seed, opts.stream ?? 0);
    this.mask = opts.mask;
    const p = params;
    this.tracksCounts = p.repetitionPenalty !== 1 || p.presencePenalty !== 0 || p.frequencyPenalty !== 0;
    if (p.repetitionPenalty !== 1 && opts.promptTokens) {
      for (let i = 0; i < opts.promptTokens.length; i++) this.counts.set(opts.promptTokens[i], 0);
    }
    const bias = Object.entries(p.logitBias).filter(([, v]) => v !== 0);
    this.biasIds = Int32Array.from(bias, ([k]) => Number(k));
    this.biasVals = Float32Array.from(bias, ([, v]) => v);
  }

  /**
   * True when the next token is the plain argmax of the raw logits: temperature 0 and
   * nothing that reads or changes the row (bias, penalties, mask, logprobs). A backend
   * may then pick it on the device, so only one id per row crosses to the host.
   */
  get plainGreedy(): boolean {
    const p = this.params;
    return p.temperature === 0 && p.logprobs === null && this.biasIds.length === 0 && !this.tracksCounts && this.mask === undefined;
  }

  /** Records a token as generated (for presence/frequency/repetition penalties). */
  accept(token: number): void {
    if (!this.tracksCounts) return;
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  /** Samples one token from `logits` ([vocab], not modified). */
  sample(logits: Float32Array, ctx: SampleContext = {}): SampleResult {
    const x = this.prepare(logits);
    const V = logits.length;
    const token = this.params.temperature === 0 ? argmax(x, V) : this.draw(this.truncate(x, V));
    if (ctx.record !== false) this.accept(token);

    const res: SampleResult = { token };
    const nTop = this.params.logprobs;
    if (nTop !== null) {
      const lse = logSumExp(logits);
      res.logprob = logits[token] - lse;
      if (nTop > 0) {
        const top = new Int32Array(Math.min(nTop, V));
        selectTopK(logits, V, top.length, top);
        res.topLogprobs = Array.from(top, (t) => ({ token: t, logprob: logits[t] - lse }));
      }
    }
    return res;
  }

  /**
   * The distribution `sample` would draw from right now: kept token ids and their
   * renormalised probabilities (ids in no particular order). Uses no randomness and
   * records nothing; for tests and for speculative decoding's acceptance test.
   */
  distribution(logits: Float32Array): { ids: Int32Array; probs: Float64Array } {
    const x = this.prepare(logits);
    const V = logits.length;
    if (this.params.temperature === 0) return { ids: Int32Array.of(argmax(x, V)), probs: Float64Array.of(1) };
    const c = this.truncate(x, V);
    const out = { ids: new Int32Array(c.end), probs: new Float64Array(c.end) };
    for (let i = 0; i < c.end; i++) {
      out.ids[i] = c.dense ? i : ids[i];
      out.probs[i] = wts[i] / c.total;
    }
    return out;
  }

  /** Logits after logit bias, penalties and the mask (a scratch buffer valid until the next call, or `logits` itself when nothing applies). */
  prepare(logits: Float32Array): Float32Array {
    const V = logits.length;
    if (V !== this.checkedVocab) this.checkVocab(V);
    ensureScratch(V);
    if (this.biasIds.length === 0 && this.counts.size === 0 && this.mask === undefined) return logits;
    const x = work.length === V ? work : work.subarray(0, V);
    x.set(logits);
    this.applyBias(x, V);
    this.applyPenalties(x, V);
    this.mask?.applyMask(x);
    return x;
  }

  private checkVocab(V: number): void {
    if (V === 0) throw new LlmrtError("sampler", "empty logits row (vocab size 0)");
    for (const id of this.biasIds) {
      if (id >= V) throw new OptionError("logitBias", `token id ${id} is outside the vocabulary (ids 0..${V - 1})`);
    }
    this.checkedVocab = V;
  }

  private applyBias(x: Float32Array, V: number): void {
    const { biasIds, biasVals } = this;
    for (let i = 0; i < biasIds.length; i++) if (biasIds[i] < V) x[biasIds[i]] += biasVals[i];
  }

  private applyPenalties(x: Float32Array, V: number): void {
    const { repetitionPenalty: rp, presencePenalty: pp, frequencyPenalty: fp } = this.params;
    for (const [t, c] of this.counts) {
      if (t < 0 || t >= V) continue;
      let v = x[t];
      if (rp !== 1) v = v > 0 ? v / rp : v * rp;
      if (c > 0) v -= c * fp + pp;
      x[t] = v;
    }
  }

  /**
   * Temperature, top-k, top-p, min-p. Leaves the kept candidates in ids/wts[0, end)
   * with unnormalised weights summing to `total`; `dense` means ids are implicit
   * (wts[i] is token i's weight, nothing was cut).
   */
  private truncate(x: Float32Array, V: number): Candidates {
    const { temperature, topK, topP, minP } = this.params;
    const invT = 1 / temperature;
    const m = x[argmax(x, V)]; // also rejects NaN, which the filters below could silently drop
    const useK = topK > 0 && topK < V;

    if (!useK && topP >= 1 && minP <= 0) {
      let z = 0;
      for (let i = 0; i < V; i++) z += wts[i] = Math.exp((x[i] - m) * invT);
      checkMass(z);
      return { dense: true, end: V, total: z };
    }

    let end: number;
    let z = 0;
    let sorted = false;
    let minPDone = false;
    if (useK) {
      end = selectTopK(x, V, topK, ids);
      for (let j = 0; j < end; j++) z += wts[j] = Math.exp((x[ids[j]] - m) * invT);
      sorted = true;
    } else if (topP < 1) {
      for (let i = 0; i < V; i++) z += wts[i] = Math.exp((x[i] - m) * invT);
      // A token below (1 - p) / (V - 1) of the mass can never be in the nucleus (the
      // tokens ranked after it cannot make up the 1 - p that would let it in), so
      // only the rest are bucketed. The top token (weight 1) always stays.
      const thr = Math.min(1, (z * (1 - topP)) / (V - 1));
      end = 0;
      for (let i = 0; i < V; i++) {
        if (wts[i] >= thr) {
          ids[end] = i;
          wts[end++] = wts[i];
        }
      }
    } else {
      // Only min-p: compare in logit space so rejected tokens cost no exp().
      const cut = m + temperature * Math.log(minP);
      minPDone = true;
      end = 0;
      for (let i = 0; i < V; i++) {
        if (x[i] >= cut) {
          ids[end] = i;
          wts[end++] = Math.exp((x[i] - m) * invT);
        }
      }
    }

    if (topP < 1) {
      // Relative to the mass still in play (after top-k), as HF/vLLM renormalise between filters.
      const target = topP * z;
      if (sorted) {
        let cum = 0;
        let k = 0;
        while (k < end) {
          cum += wts[k++];
          if (cum >= target) break;
        }
        end = k;
      } else {
        end = nucleus(x, m, invT, end, target);
      }
    }
    if (minP > 0 && !minPDone) {
      // Weights are relative to the top token (weight exactly 1), so the cut is minP itself.
      let j = 0;
      for (let i = 0; i < end; i++) {
        if (wts[i] >= minP) {
          ids[j] = ids[i];
          wts[j++] = wts[i];
        }
      }
      end = j;
    }
    let total = 0;
    for (let i = 0; i < end; i++) total += wts[i];
    checkMass(total); // NaN logits surface here
    return { dense: false, end, total };
  }

  /** One inverse-CDF draw over the candidates. */
  private draw(c: Candidates): number {
    let r = this.rng.nextFloat() * c.total;
    const id = (i: number) => (c.dense ? i : ids[i]);
    for (let i = 0; i < c.end; i++) if ((r -= wts[i]) < 0) return id(i);
    for (let i = c.end - 1; ; i--) if (wts[i] > 0) return id(i); // rounding left r >= 0
  }
}

interface Candidates {
  dense: boolean;
  end: number;
  total: number;
}

export function noFinite(): LlmrtError {
  return new LlmrtError("sampler", "logits contain NaN or are all -Infinity", "check the model output (NaN usually means overflow in the forward pass)");
}

function checkMass(z: number): void {
  if (!(z > 0 && z < Infinity)) throw new LlmrtError("sampler", `logits give no usable distribution (softmax mass ${z})`, "the model produced NaN logits?");
}

/** Index of the largest logit; ties go to the lowest id (as llama.cpp / llama2.c argmax). */
export function argmax(x: Float32Array, V = x.length): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < V; i++) {
    const v = x[i];
    if (v > bv) {
      bv = v;
      best = i;
    } else if (v !== v) throw noFinite(); // NaN: a model bug, not something to sample around
  }
  if (!(bv > -Infinity)) throw noFinite();
  return best;
}

function logSumExp(x: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  if (!(m > -Infinity)) return m;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - m);
  return m + Math.log(s);
}

/**
 * Writes the ids of the k largest values of x[0, V) into out[0, k), largest first,
 * ties by lowest id. A size-k min-heap keeps the worst kept one at the root, so most
 * tokens cost one comparison.
 */
export function selectTopK(x: Float32Array, V: number, k: number, out: Int32Array): number {
  k = Math.min(k, V) | 0; // |0 keeps k an int32 for V8 (a double k slows the scan ~3x)
  for (let i = 0; i < k; i++) out[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDownMin(x, out, i, k);
  // Later ids lose ties, so only a strictly larger value displaces the root.
  let rootV = x[out[0]];
  for (let i = k; i < V; i++) {
    if (x[i] > rootV) {
      out[0] = i;
      siftDownMin(x, out, 0, k);
      rootV = x[out[0]];
    }
  }
  // Heapsort of a min-heap moves the worst to the back: the result is best-first.
  for (let n = k - 1; n > 0; n--) {
    const t = out[0];
    out[0] = out[n];
    out[n] = t;
    siftDownMin(x, out, 0, n);
  }
  return k;
}

/** a ranks below b: smaller value, or equal value and larger id. */
function worse(x: Float32Array, a: number, b: number): boolean {
  return x[a] < x[b] || (x[a] === x[b] && a > b);
}

// Top-level rather than closures: captured arrays would slow the hot loop above.
function siftDownMin(x: Float32Array, heap: Int32Array, i: number, n: number): void {
  const t = heap[i];
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && worse(x, heap[c + 1], heap[c])) c++;
    if (!worse(x, heap[c], t)) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = t;
}

const NB = 1024;
const bucketMass = new Float64Array(NB);
let bucketOf = new Uint16Array(0);

/**
 * Top-p over unsorted candidates ids/wts[0, n), wts = exp((x - m) / T). Buckets the
 * candidates by (m - x) / T, sums each bucket's mass from the top, and sorts only
 * the one bucket where the running mass crosses `target`, so a flat distribution
 * with a huge nucleus costs O(n), not O(n log n). Keeps the heaviest tokens (ties by
 * lowest id) until their mass reaches `target`, compacted into [0, end); returns end.
 */
function nucleus(x: Float32Array, m: number, invT: number, n: number, target: number): number {
  if (bucketOf.length < n) bucketOf = new Uint16Array(ids.length);
  let span = 0;
  for (let i = 0; i < n; i++) span = Math.max(span, (m - x[ids[i]]) * invT);
  const scale = span > 0 ? (NB - 1) / span : 0;
  bucketMass.fill(0);
  for (let i = 0; i < n; i++) {
    const b = Math.min(NB - 1, Math.floor((m - x[ids[i]]) * invT * scale));
    bucketOf[i] = b;
    bucketMass[b] += wts[i];
  }
  let k = 0;
  let before = 0;
  for (; k < NB - 1 && before + bucketMass[k] < target; k++) before += bucketMass[k];

  const members: number[] = [];
  for (let i = 0; i < n; i++) if (bucketOf[i] === k) members.push(i);
  members.sort((a, b) => wts[b] - wts[a] || ids[a] - ids[b]);
  let take = 0;
  for (let cum = before; take < members.length && cum < target; take++) cum += wts[members[take]];
  const keepIds = members.slice(0, take).map((i) => ids[i]);
  const keepWts = members.slice(0, take).map((i) => wts[i]);

  let end = 0;
  for (let i = 0; i < n; i++) {
    if (bucketOf[i] < k) {
      ids[end] = ids[i];
      wts[end++] = wts[i];
    }
  }
  for (let t = 0; t < take; t++) {
    ids[end] = keepIds[t];
    wts[end++] = keepWts[t];
  }
  return end;
}

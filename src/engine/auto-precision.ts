/**
 * llmrt build --quant auto: builds every candidate precision for the target into a temp
 * folder, measures each one's perplexity (same windows of the same text) and decode
 * speed on the target's backend, picks the fastest within the perplexity budget and
 * moves that engine into the output dir; its manifest records the pick and the table.
 * Where a weight-only candidate misses the budget, per-layer-group mixes are searched
 * too (auto-mix.ts), built and measured the same way, and compete in the same pick.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Checkpoint } from "../checkpoint/types.js";
import { measureLatency, median } from "../eval/latency.js";
import { chunkedPerplexity } from "../eval/chunked-ppl.js";
import { sampleText } from "../eval/sample-text.js";
import { autoCandidates, formatAutoTable, pickCandidate, type CandidateResult } from "../quant/auto.js";
import { searchMixes } from "./auto-mix.js";
import type { QuantOptions } from "../quant/options.js";
import { buildEngineDir } from "./build.js";
import { Engine } from "./engine.js";
import { ENGINE_FILE, writeManifest, type EngineManifest } from "./format.js";
import { resolveBuildOptions, type BuildOptions, type BuildRequest } from "./options.js";
import type { CalibrationData } from "./smoothquant.js";
import { targetByName } from "./targets.js";

/** A short fixed measurement: enough tokens to rank candidates, seconds on stories260K. */
const EVAL_TOKENS = 256;
const EVAL_CTX = 128;
const SAMPLE_SEED = 1;
const DECODE = { prompt: 8, gen: 32, runs: 5 };

export interface AutoOptions {
  /** Largest accepted perplexity increase over fp32, as a fraction (0.01 = 1%). */
  maxPplIncrease: number;
  /** --calib-data: the evaluation text (and w8a8's calibration); absent = text sampled from the fp32 engine. */
  calibration?: CalibrationData;
  /** Calibration settings from the flags (smoothAlpha, calibSamples, calibData): w8a8's, and calibSamples / calibData for the GPTQ candidates. */
  w8a8?: Partial<QuantOptions>;
  /** The first token(s) of the sampled text (the tokenizer's BOS). */
  samplePrompt: number[];
  onLog?: (line: string) => void;
}

export interface AutoRecord {
  maxPplIncrease: number;
  evalText: string;
  chosen: string;
  table: CandidateResult[];
}

export interface AutoResult {
  manifest: EngineManifest & { autoPrecision: AutoRecord };
  chosen: number;
  results: CandidateResult[];
  table: string[];
}

export async function buildAutoEngineDir(ckpt: Checkpoint, dir: string, opts: BuildRequest, auto: AutoOptions): Promise<AutoResult> {
  const base = resolveBuildOptions(ckpt.config, { ...opts, dtype: "fp32", quant: undefined });
  const log = auto.onLog ?? (() => {});
  const tmp = mkdtempSync(join(tmpdir(), "llmrt-auto-"));
  try {
    const candidates = autoCandidates(base.target, auto.calibration !== undefined);
    const built: { dir?: string; manifest?: EngineManifest; error?: string }[] = [];
    for (const [i, c] of candidates.entries()) {
      const cdir = join(tmp, `c${i}`);
      try {
        const o = { ...base, dtype: c.dtype, quant: candidateQuant(c.quant, auto.w8a8) };
        const files = await targetByName(base.target).buildFiles?.(resolveBuildOptions(ckpt.config, o));
        const manifest = buildEngineDir(ckpt, cdir, o, { files, calibration: auto.calibration });
        built.push({ dir: cdir, manifest });
      } catch (e) {
        if (i === 0) throw e; // fp32 is the reference: without it nothing can be judged
        built.push({ error: (e as Error).message.split("\n")[0] });
      }
    }
    const { tokens, source } = evalText(built[0].dir!, base, auto);
    if (auto.calibration) log(`auto: int8-wo / int4-wo candidates are GPTQ-calibrated on ${auto.calibration.source}, which is also the evaluation text: their perplexity is measured on text they saw`);
    log(`auto: evaluation text: ${tokens.length} tokens ${source}; windows of ${Math.min(EVAL_CTX, base.maxSeqLen, tokens.length)} tokens; decode ${DECODE.gen} tokens after ${DECODE.prompt}, median of ${DECODE.runs} runs`);
    const results: CandidateResult[] = [];
    for (const [i, c] of candidates.entries()) {
      const b = built[i];
      if (!b.dir) {
        results.push({ name: c.name, withinBudget: false, error: b.error });
        continue;
      }
      try {
        const m = measure(b.dir, base, tokens);
        const increase = i === 0 ? 0 : m.ppl / results[0].ppl! - 1;
        results.push({ name: c.name, weightBytes: b.manifest!.weights.bytes, ppl: m.ppl, increase, msPerToken: m.msPerToken, withinBudget: increase <= auto.maxPplIncrease });
      } catch (e) {
        if (i === 0) throw e;
        results.push({ name: c.name, weightBytes: b.manifest!.weights.bytes, withinBudget: false, error: (e as Error).message.split("\n")[0] });
      }
    }
    // per-layer-group mixes: each built into the temp folder and measured as above, one `built` entry per row
    const files = results.some((r) => !r.withinBudget) ? await targetByName(base.target).buildFiles?.(base) : undefined; // the cuda target's kernels, only where a mix may be built
    const tryBuild = (name: string, quant: QuantOptions): CandidateResult => {
      const cdir = join(tmp, `c${built.length}`);
      const entry: (typeof built)[number] = {};
      built.push(entry);
      try {
        entry.manifest = buildEngineDir(ckpt, cdir, { ...base, dtype: "fp32", quant: candidateQuant(quant, auto.w8a8) }, { files, calibration: auto.calibration });
        entry.dir = cdir;
        const m = measure(cdir, base, tokens);
        const increase = m.ppl / results[0].ppl! - 1;
        return { name, weightBytes: entry.manifest.weights.bytes, ppl: m.ppl, increase, msPerToken: m.msPerToken, withinBudget: increase <= auto.maxPplIncrease };
      } catch (e) {
        entry.error = (e as Error).message.split("\n")[0];
        return { name, weightBytes: entry.manifest?.weights.bytes, withinBudget: false, error: entry.error };
      }
    };
    const mixes = searchMixes({ ckpt, tokens, budget: auto.maxPplIncrease, candidates, results, tryBuild, log });
    results.push(...mixes);
    const chosen = pickCandidate(results);
    const table = formatAutoTable(results, chosen, auto.maxPplIncrease);
    log(`auto: candidates on target ${base.target}${mixes.length ? "; mixes: per-layer-group formats, perplexity and ms/token measured like the uniform rows" : ""} (budget +${(100 * auto.maxPplIncrease).toFixed(2)}% perplexity over fp32; * = chosen, the fastest within it):`);
    table.forEach((l) => log(`  ${l}`));
    const manifest = { ...built[chosen].manifest!, autoPrecision: { maxPplIncrease: auto.maxPplIncrease, evalText: source, chosen: results[chosen].name, table: results } };
    moveEngine(built[chosen].dir!, dir, manifest);
    log(`auto: chose ${results[chosen].name}`);
    return { manifest, chosen, results, table };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A candidate's quant options with the calibration flags (--calib-samples, --calib-data) where it calibrates: w8a8, and GPTQ weight-only. */
function candidateQuant(q: QuantOptions | undefined, flags: Partial<QuantOptions> | undefined): QuantOptions | undefined {
  if (q?.scheme === "w8a8") return { ...flags, scheme: "w8a8" };
  if (q?.method !== "gptq") return q;
  const { calibSamples, calibData } = flags ?? {};
  return { ...q, ...(calibSamples !== undefined ? { calibSamples } : {}), ...(calibData !== undefined ? { calibData } : {}) };
}

/** The evaluation tokens: the head of --calib-data, else a seeded sample of the fp32 engine. */
function evalText(fp32Dir: string, base: BuildOptions, auto: AutoOptions): { tokens: number[]; source: string } {
  const max = EVAL_TOKENS;
  if (auto.calibration) return { tokens: auto.calibration.tokens.slice(0, max), source: `of ${auto.calibration.source}` };
  const n = Math.min(max, base.maxSeqLen) - auto.samplePrompt.length;
  const e = Engine.load(fp32Dir, { maxSeqs: 1 });
  try {
    return { tokens: sampleText(e, auto.samplePrompt, n, SAMPLE_SEED), source: `sampled from the fp32 model (seed ${SAMPLE_SEED}, no --calib-data given)` };
  } finally {
    e.close();
  }
}

function measure(dir: string, base: BuildOptions, tokens: number[]): { ppl: number; msPerToken: number } {
  const ctx = Math.min(EVAL_CTX, base.maxSeqLen, tokens.length);
  const P = Math.min(DECODE.prompt, base.maxBatchTokens, base.maxSeqLen - 2);
  const G = Math.min(DECODE.gen, base.maxSeqLen - P);
  const e = Engine.load(dir, { maxSeqs: 1 });
  try {
    const ppl = chunkedPerplexity(e, tokens, { ctx, stride: Math.max(1, ctx >> 1), chunk: Math.min(base.maxBatchTokens, base.maxLogitRows) }).perplexity;
    const { decode } = measureLatency(e, P, G, DECODE.runs);
    return { ppl, msPerToken: (1000 * median(decode)) / G };
  } finally {
    e.close();
  }
}

/** The chosen candidate's files into `dir`, the manifest last (a dir without it is unfinished). */
function moveEngine(from: string, dir: string, manifest: EngineManifest): void {
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(from)) if (name !== ENGINE_FILE) cpSync(join(from, name), join(dir, name), { recursive: true });
  writeManifest(dir, manifest);
}

/**
 * stories260K against the llama2.c / llama.cpp goldens (../shared/golden, or the copy in
 * .device/fixtures on a GPU machine): each prompt plus its golden continuation is fed as
 * one prefill step, and at every generating position the argmax must be the golden
 * token and the top-5 logits must be llama2.c's. Argmax agreement at every position is
 * exactly "greedy decoding reproduces the golden tokens", in one step per prompt.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Engine } from "../../src/engine/engine.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { buildStep } from "../../src/runtime/step-builder.js";

export const STORIES_PROMPTS = ["once_upon_a_time", "lily_and_ben", "the_cat", "empty_prompt", "empty_prompt_256"];

export interface Golden {
  prompt: string;
  prompt_token_ids: number[];
  output_token_ids: number[];
  top_logits?: [number, number][][];
}

export function readStoriesGoldens(sharedDir: string, prompts = STORIES_PROMPTS): Golden[] {
  return prompts.map((p) => JSON.parse(readFileSync(join(sharedDir, "golden", `stories260K.llama2c.${p}.json`), "utf8")) as Golden);
}

export interface GoldenReport {
  /** "prompt@position: got X, golden Y" for every disagreeing argmax. */
  mismatches: string[];
  /** Largest |logit - llama2.c's| / max(1, |llama2.c's|) over the top-5 of every position. */
  worstLogit: number;
  positions: number;
}

export function teacherForcedGoldens(engine: Engine, goldens: Golden[], names = STORIES_PROMPTS): GoldenReport {
  const V = engine.config.vocabSize;
  const report: GoldenReport = { mismatches: [], worstLogit: 0, positions: 0 };
  goldens.forEach((g, i) => {
    const tokens = [...g.prompt_token_ids, ...g.output_token_ids.slice(0, -1)];
    const seq = new Sequence(0, tokens);
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, tokens.length);
    const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize);
    const first = g.prompt_token_ids.length - 1;
    step.logitRows = Int32Array.from({ length: g.output_token_ids.length }, (_, k) => first + k);
    const logits = engine.forward(step);
    for (let k = 0; k < g.output_token_ids.length; k++) {
      const row = logits.subarray(k * V, (k + 1) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
      if (best !== g.output_token_ids[k]) report.mismatches.push(`${names[i]}@${k}: got ${best}, golden ${g.output_token_ids[k]}`);
      for (const [id, want] of g.top_logits?.[k] ?? []) report.worstLogit = Math.max(report.worstLogit, Math.abs(row[id] - want) / Math.max(1, Math.abs(want)));
      report.positions++;
    }
  });
  return report;
}

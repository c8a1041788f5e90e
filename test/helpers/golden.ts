/** Reading ../shared/golden generation files (see its README for the fields). */
import { readFileSync } from "node:fs";

export interface GoldenGeneration {
  prompt: string;
  prompt_token_ids: number[];
  output_token_ids: number[];
  output_text: string;
  /** llama2.c: the 5 largest raw logits [id, logit] at each generated position. */
  top_logits?: [number, number][][];
  /** llama.cpp: the 5 most probable [id, prob] at each generated position. */
  top_probs?: [number, number][][];
}

export function readGolden(path: string): GoldenGeneration {
  return JSON.parse(readFileSync(path, "utf8")) as GoldenGeneration;
}

export const STORIES_PROMPTS = ["once_upon_a_time", "lily_and_ben", "the_cat", "empty_prompt", "empty_prompt_256"];

/** Log-softmax of one logits row, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

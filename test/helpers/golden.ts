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

/** Log-softmax of one logits row: the one the eval tools use. */
export { logSoftmax } from "../../src/eval/windows.js";

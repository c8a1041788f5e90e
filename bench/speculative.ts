/**
 * Decode speed with and without speculative decoding on stories260K story prompts
 * (its stories repeat, so prompt lookup should pay), greedy, one sequence at a time.
 * Modes run alternately, medians over rounds.
 *   npx tsx bench/speculative.ts [--target cpu|reference] [--rounds 3] [--tokens 256]
 */
import { join } from "node:path";
import { LLM } from "../src/api/llm.js";
import { SHARED_DIR } from "../test/helpers/fixtures.js";
import { machineLine, median } from "./machine.js";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const target = arg("--target", "cpu");
const rounds = Number(arg("--rounds", "3"));
const tokens = Number(arg("--tokens", "256"));
const model = join(SHARED_DIR, "models/stories260K-gguf/stories260K.gguf");
const draft = join(SHARED_DIR, "models/stories260K");
const prompts = ["Once upon a time", "Lily and Ben", "The cat", ""];

console.log(`command: npx tsx bench/speculative.ts --target ${target} --rounds ${rounds} --tokens ${tokens}`);
console.log(`machine: ${machineLine()}`);

const modes: Record<string, string | undefined> = {
  "no speculation": undefined,
  "n-gram k=4 n=3": "ngram,k=4,n=3",
  "draft = stories260K itself, k=4": `draft:${draft},k=4`,
};
const llms = new Map<string, LLM>();
for (const [name, speculative] of Object.entries(modes)) llms.set(name, await LLM.load(model, { maxSeqs: 1, maxSeqLen: 512, build: { target }, speculative }));

const rates = new Map<string, number[]>([...llms.keys()].map((k) => [k, []]));
for (let r = 0; r <= rounds; r++) {
  for (const [name, llm] of llms) {
    let n = 0;
    const t0 = performance.now();
    for (const p of prompts) n += (await llm.generate(p, { temperature: 0, maxTokens: tokens, ignoreEos: true }))[0].outputs[0].tokenIds.length;
    if (r > 0) rates.get(name)!.push(n / ((performance.now() - t0) / 1000)); // round 0 warms up
  }
}
const base = median(rates.get("no speculation")!);
console.log(`| mode (${target} backend) | tok/s (median) | speedup | acceptance | tokens per verification |`);
console.log("|---|---|---|---|---|");
for (const [name, llm] of llms) {
  const s = llm.stats();
  const m = median(rates.get(name)!);
  const acc = s.specDraftTokens > 0 ? `${(s.specAcceptanceRate * 100).toFixed(1)}%` : "-";
  const len = s.specDraftTokens > 0 ? s.specMeanAcceptedLength.toFixed(2) : "-";
  console.log(`| ${name} | ${m.toFixed(0)} | ${(m / base).toFixed(2)}x | ${acc} | ${len} |`);
  llm.close();
}

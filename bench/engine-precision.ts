/**
 * Accuracy of FP16 and BF16 weight storage against FP32 on stories260K, with the goldens
 * of ../shared/golden (llama2.c): engines built for each dtype, then
 *   teacher forcing over every golden sequence: max and mean |logit - FP32 logit|, top-1
 *     agreement with FP32, golden steps whose top-1 changes and the golden gap there;
 *   free-running greedy decoding: tokens equal to the golden before the first divergence.
 *   npx tsx bench/engine-precision.ts
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLM } from "../src/api/llm.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import type { EngineDType } from "../src/engine/options.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";
import { sharedPath } from "../test/helpers/fixtures.js";
import { STORIES_PROMPTS, readGolden, type GoldenGeneration } from "../test/helpers/golden.js";
import { machineLine } from "./machine.js";

console.log("command: npx tsx bench/engine-precision.ts");
console.log(`machine: ${machineLine()}`);

const root = mkdtempSync(join(tmpdir(), "llmrt-bench-precision-"));
const gens = STORIES_PROMPTS.map((p) => readGolden(sharedPath(`golden/stories260K.llama2c.${p}.json`)));
const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

function build(dtype: EngineDType): string {
  const dir = join(root, dtype);
  const ckpt = openCheckpoint(sharedPath("models/stories260K"));
  buildEngineDir(ckpt, dir, { dtype, maxBatchTokens: 512, maxLogitRows: 512, maxSeqs: 8 });
  ckpt.close();
  return dir;
}

function forced(engine: Engine, g: GoldenGeneration): Float32Array[] {
  const tokens = [...g.prompt_token_ids, ...g.output_token_ids.slice(0, -1)];
  const seq = new Sequence(0, tokens);
  new BlockPool(engine.kv.numBlocks, engine.kv.blockSize).reserve(seq, tokens.length);
  const step = buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize);
  step.logitRows = Int32Array.from(g.output_token_ids, (_, k) => g.prompt_token_ids.length - 1 + k);
  const logits = engine.forward(step);
  const V = engine.config.vocabSize;
  return g.output_token_ids.map((_, k) => logits.slice(k * V, (k + 1) * V));
}

const dirs = Object.fromEntries((["fp32", "fp16", "bf16"] as EngineDType[]).map((d) => [d, build(d)]));
const ref = gens.map((g) => forced(Engine.load(dirs.fp32), g));
const steps = gens.reduce((n, g) => n + g.output_token_ids.length, 0);

console.log(`\nteacher forcing over ${steps} golden steps (5 prompts, incl. the 256-token empty prompt):`);
console.log("| dtype | weights.bin | max abs logit err vs FP32 | mean abs err | top-1 = FP32 | top-1 changes vs golden (golden gap there) |");
console.log("|---|---|---|---|---|---|");
for (const dtype of ["fp32", "fp16", "bf16"] as EngineDType[]) {
  const engine = Engine.load(dirs[dtype]);
  let max = 0;
  let sum = 0;
  let count = 0;
  let agree = 0;
  const flips: string[] = [];
  gens.forEach((g, i) =>
    forced(engine, g).forEach((row, k) => {
      for (let v = 0; v < row.length; v++) {
        const e = Math.abs(row[v] - ref[i][k][v]);
        max = Math.max(max, e);
        sum += e;
        count++;
      }
      if (argmax(row) === argmax(ref[i][k])) agree++;
      if (argmax(row) !== g.output_token_ids[k]) flips.push(`${STORIES_PROMPTS[i]} #${k} (${(g.top_logits![k][0][1] - g.top_logits![k][1][1]).toFixed(4)})`);
    }),
  );
  const bytes = statSync(join(dirs[dtype], "weights.bin")).size;
  console.log(`| ${dtype} | ${(bytes / 1024).toFixed(0)} KiB | ${max.toExponential(2)} | ${(sum / count).toExponential(2)} | ${agree}/${steps} | ${flips.length}${flips.length ? ": " + flips.join(", ") : ""} |`);
}

console.log("\nfree-running greedy decoding (tokens equal to the golden before the first divergence):");
console.log(`| dtype | ${STORIES_PROMPTS.join(" | ")} |`);
console.log(`|---|${STORIES_PROMPTS.map(() => "---").join("|")}|`);
for (const dtype of ["fp32", "fp16", "bf16"] as EngineDType[]) {
  const llm = await LLM.load(dirs[dtype], { maxSeqs: 8 });
  const outs = await Promise.all(gens.map((g) => llm.generate(g.prompt, { temperature: 0, maxTokens: g.output_token_ids.length, ignoreEos: true })));
  llm.close();
  const cells = outs.map(([r], i) => {
    const want = gens[i].output_token_ids;
    const got = r.outputs[0].tokenIds;
    let n = 0;
    while (n < want.length && got[n] === want[n]) n++;
    return `${n}/${want.length}`;
  });
  console.log(`| ${dtype} | ${cells.join(" | ")} |`);
}
rmSync(root, { recursive: true, force: true });

/**
 * LLM.beamSearch on stories260K against a brute-force reference written here: at each
 * depth, every live prefix is run through a fresh full forward (no KV reuse, no
 * batching) and all prefix x vocabulary continuations are ranked.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LLM } from "../../src/api/llm.js";
import { Engine } from "../../src/engine/engine.js";
import { openCheckpoint } from "../../src/checkpoint/open.js";
import { Sequence } from "../../src/runtime/sequence.js";
import { BlockPool } from "../../src/runtime/kv-cache.js";
import { buildStep } from "../../src/runtime/step-builder.js";
import { fixture } from "../helpers/fixtures.js";
import { logSoftmax } from "../helpers/golden.js";

test("beam search on stories260K equals a brute-force level-by-level search", async (t) => {
  const model = fixture(t, "models/stories260K");
  if (!model) return;
  const W = 3;
  const L = 5;
  const ckpt = openCheckpoint(model);
  const engine = Engine.fromCheckpoint(ckpt, { maxSeqLen: 64 });
  ckpt.close();
  const lastLogprobs = (tokens: number[]) => {
    const seq = new Sequence(0, tokens);
    const pool = new BlockPool(engine.kv.numBlocks, engine.kv.blockSize);
    pool.reserve(seq, tokens.length);
    return logSoftmax(engine.forward(buildStep([{ seq, numNew: tokens.length, wantLogits: true }], engine.kv.blockSize)));
  };
  const llm = await LLM.load(model, { maxSeqs: 8 });
  try {
    const prompt = llm.encode("Once upon a time");
    let beams = [{ ids: [] as number[], cum: 0 }];
    for (let d = 0; d < L; d++) {
      const all = beams.flatMap((b) => Array.from(lastLogprobs([...prompt, ...b.ids]), (lp, tok) => ({ ids: [...b.ids, tok], cum: b.cum + lp })));
      beams = all.sort((a, b) => b.cum - a.cum).slice(0, W);
      assert.ok(beams.every((b) => b.ids.at(-1) !== 2), "no EOS within the horizon (the reference assumes none)");
    }
    const out = await llm.beamSearch("Once upon a time", { beamWidth: W, maxTokens: L, n: W, lengthPenalty: 0 });
    assert.deepEqual(out.outputs.map((o) => o.tokenIds), beams.map((b) => b.ids));
    out.outputs.forEach((o, i) => assert.ok(Math.abs(o.cumulativeLogprob! - beams[i].cum) < 1e-4));
    assert.equal(out.outputs[0].text, llm.tokenizer.decode([...prompt, ...beams[0].ids]).slice(llm.tokenizer.decode(prompt).length));
    t.diagnostic(`best beam: ${JSON.stringify(out.outputs[0].text)} (cum logprob ${out.outputs[0].cumulativeLogprob!.toFixed(4)})`);
  } finally {
    llm.close();
  }
});

/**
 * Prefill and decode timing of one sequence on an engine: what `llmrt bench latency`
 * reports, and what `--quant auto` compares candidates by.
 */
import type { Engine } from "../engine/engine.js";
import { BlockPool } from "../runtime/kv-cache.js";
import { Rng } from "../runtime/rng.js";
import { Sequence } from "../runtime/sequence.js";
import { buildStep } from "../runtime/step-builder.js";

/** The middle value (upper middle for an even count); NaN for none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

export interface LatencyTimes {
  /** Seconds per run: the P-token prefill step, and all G decode steps together. */
  prefill: number[];
  decode: number[];
}

/** Times `runs` sequences (after one warm-up): a P-token prefill step, then G one-token decode steps. */
export function measureLatency(engine: Engine, P: number, G: number, runs: number, onStep: (done: number, total: number) => void = () => {}): LatencyTimes {
  const vocab = engine.config.vocabSize;
  const r = new Rng(1);
  const next = (n: number) => Math.floor(r.nextFloat() * n);
  const times: LatencyTimes = { prefill: [], decode: [] };
  for (let run = 0; run < runs + 1; run++) {
    // run 0 warms up (JIT, page faults) and is not counted
    const seq = new Sequence(0, Array.from({ length: P + G }, () => next(vocab)));
    new BlockPool(engine.kv.numBlocks, engine.kv.blockSize, false).reserve(seq, P + G);
    const step = (n: number) => {
      const s = buildStep([{ seq, numNew: n, wantLogits: true }], engine.kv.blockSize);
      const t = performance.now();
      // as generate does it: greedy picked where the logits are when the backend can
      if (engine.hasDeviceGreedy) engine.forwardGreedy(s);
      else engine.forward(s);
      seq.numComputed += n;
      return (performance.now() - t) / 1000;
    };
    const p = P > 0 ? step(P) : 0;
    let d = 0;
    for (let i = 0; i < G; i++) {
      d += step(1);
      if (run > 0) onStep((run - 1) * G + i + 1, runs * G);
    }
    if (run > 0) (times.prefill.push(p), times.decode.push(d));
  }
  return times;
}

/**
 * What the cpu backend's integer decode costs in accuracy: logits of stories260K, one token
 * per step (the decode kernels) along a fixed 48-token sequence, for int8-wo and int4-wo g32
 * engines on the cpu backend (activations quantized to int16 per token) against the reference backend on the same packed weights (f32 activations),
 * beside the weights' own error (reference int8 / int4 against reference f32). Errors are
 * max |difference| over a step's logits / max |logit|, worst and mean over steps.
 *
 *   node --import tsx bench/cpu-packed-precision.ts [model dir, default ../shared/models/stories260K]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import { openCheckpoint } from "../src/checkpoint/open.js";
import { buildEngineDir } from "../src/engine/build.js";
import { Engine } from "../src/engine/engine.js";
import type { QuantOptions } from "../src/quant/options.js";
import { BlockPool } from "../src/runtime/kv-cache.js";
import { Sequence } from "../src/runtime/sequence.js";
import { buildStep } from "../src/runtime/step-builder.js";
import { sharedPath } from "../test/helpers/fixtures.js";

const model = process.argv[2] ?? sharedPath("models/stories260K");
const tmp = mkdtempSync(join(tmpdir(), "llmrt-prec-"));
const OPTS = { maxBatchTokens: 64, maxLogitRows: 1, maxSeqs: 1, maxSeqLen: 64 };
const tokens = Array.from({ length: 48 }, (_, i) => 1 + ((i * 37 + 11) % 500));

function stepLogits(e: Engine): Float32Array[] {
  const seq = new Sequence(0, tokens);
  new BlockPool(e.kv.numBlocks, e.kv.blockSize).reserve(seq, tokens.length);
  const out: Float32Array[] = [];
  for (let i = 0; i < tokens.length; i++) {
    out.push(e.forward(buildStep([{ seq, numNew: 1, wantLogits: true }], e.kv.blockSize)).slice());
    seq.numComputed += 1;
  }
  return out;
}

function err(got: Float32Array[], want: Float32Array[]): string {
  const r = want.map((w, s) => {
    let e = 0;
    let m = 0;
    for (let i = 0; i < w.length; i++) (e = Math.max(e, Math.abs(got[s][i] - w[i]))), (m = Math.max(m, Math.abs(w[i])));
    return e / m;
  });
  return `worst ${Math.max(...r).toExponential(2)}, mean ${(r.reduce((a, b) => a + b, 0) / r.length).toExponential(2)}`;
}

try {
  const ckpt = openCheckpoint(model);
  buildEngineDir(ckpt, join(tmp, "f32"), { ...OPTS, target: "reference" });
  const f32 = stepLogits(Engine.load(join(tmp, "f32")));
  const quants: [string, QuantOptions][] = [["int8-wo", { scheme: "int8-wo" }], ["int4-wo g32", { scheme: "int4-wo", groupSize: 32 }]];
  for (const [name, quant] of quants) {
    const d = join(tmp, name.replace(/ /g, "-"));
    buildEngineDir(ckpt, `${d}-ref`, { ...OPTS, quant, target: "reference" });
    buildEngineDir(ckpt, `${d}-cpu`, { ...OPTS, quant, target: "cpu" });
    const ref = stepLogits(Engine.load(`${d}-ref`));
    const backend = new CpuBackend({ threads: 1 });
    const cpu = stepLogits(Engine.load(`${d}-cpu`, { backend: { name: "cpu", packedDTypes: backend.packedDTypes, bind: (...a: Parameters<CpuBackend["bind"]>) => backend.bind(...a) } }));
    console.log(`${name}: activation quantization (cpu vs reference, same weights) ${err(cpu, ref)}; weight quantization (reference ${name} vs f32) ${err(ref, f32)}`);
  }
  ckpt.close();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

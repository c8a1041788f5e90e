/**
 * Micro-benchmark of the CPU paged attention kernel alone (assembly/attention.ts): one
 * call (buffers placed once, as the backend has them) over a single sequence, either a prefill of --prefill tokens from position 0 or a
 * one-token decode at --decode context. Prints wall and CPU milliseconds per call, best
 * and median of --reps (CPU time: the process's, all threads; on a shared machine it
 * moves less than wall time).
 *
 *   node --import tsx bench/cpu-attention.ts [--threads 1,2] [--prefill 512] [--decode 0]
 *     [--heads 12] [--kv-heads 12] [--head-dim 64] [--kv-dtype f32|f16|bf16|int8] [--reps 15] [--cold]
 *     [--seqs 1] [--blas | --ab]
 *
 * --seqs N decodes N sequences at once (each at --decode context, blocks of its own).
 * --qkv times the fused attention_qkv op as a model runs it: q/k/v split, RoPE and the
 * K/V write (QKV_PREP), then attention.
 *
 * --blas runs a prefill through the BLAS path (blas-attention.ts: sgemm for q.k and p.v, the
 * pool's softmax between) instead of the WASM kernel; with --ab, both, calls alternating.
 *
 * --cold writes 64 MiB elsewhere before each call (untimed), so the cache comes from DRAM as
 * in a model's decode step, where the weights streamed since the last layer evicted it.
 */
import { parseArgs } from "node:util";
import type { KvDType } from "../src/backends/backend.js";
import { KV_DTYPE_CODE, OP, fbits } from "../src/backends/cpu/program.js";
import { CpuRuntime } from "../src/backends/cpu/runtime.js";
import { StepData } from "../src/backends/cpu/step-data.js";
import { BlasAttention } from "../src/backends/cpu/blas-attention.js";
import { systemBlas } from "../src/backends/cpu/blas.js";
import type { StepBatch } from "../src/graph/step-batch.js";

const { values: args } = parseArgs({
  options: {
    threads: { type: "string", default: "1,2" },
    prefill: { type: "string", default: "512" },
    decode: { type: "string", default: "0" },
    heads: { type: "string", default: "12" },
    "kv-heads": { type: "string", default: "12" },
    "head-dim": { type: "string", default: "64" },
    "kv-dtype": { type: "string", default: "f32" },
    reps: { type: "string", default: "15" },
    cold: { type: "boolean", default: false },
    seqs: { type: "string", default: "1" },
    qkv: { type: "boolean", default: false },
    blas: { type: "boolean", default: false },
    ab: { type: "boolean", default: false },
  },
});
const heads = Number(args.heads), kvHeads = Number(args["kv-heads"]), headDim = Number(args["head-dim"]);
const dtype = args["kv-dtype"] as KvDType;
const decodeCtx = Number(args.decode);
const T = decodeCtx > 0 ? 1 : Number(args.prefill);
const ctx = decodeCtx > 0 ? decodeCtx : T;
const BLOCK = 16;

const S = decodeCtx > 0 ? Number(args.seqs) : 1;

/** S sequences: tokens at positions ctx - T .. ctx - 1 each, each sequence's blocks in order after the previous one's. */
function stepFor(): StepBatch {
  const blocks = Math.ceil(ctx / BLOCK);
  const positions = Int32Array.from({ length: S * T }, (_, i) => ctx - T + (i % T));
  const slotMapping = Int32Array.from({ length: S * T }, (_, i) => Math.floor(i / T) * blocks * BLOCK + positions[i]);
  return {
    numTokens: S * T,
    tokenIds: new Int32Array(S * T),
    positions,
    seqStarts: Int32Array.from({ length: S + 1 }, (_, s) => s * T),
    contextLens: new Int32Array(S).fill(ctx),
    blockTables: Array.from({ length: S }, (_, s) => Int32Array.from({ length: blocks }, (_, i) => s * blocks + i)),
    slotMapping,
    logitRows: new Int32Array(0),
  };
}

/** Cache bytes [slots, kvHeads, head] of dtype: arbitrary finite values (int8: scale 1/64 per head). */
function cachePlane(slots: number, seed: number): Float32Array | Uint8Array {
  if (dtype === "f32") return Float32Array.from({ length: slots * kvHeads * headDim }, (_, i) => Math.sin(i * 0.37 + seed));
  const headBytes = dtype === "int8" ? 4 + headDim : 2 * headDim;
  const bytes = Uint8Array.from({ length: slots * kvHeads * headBytes }, (_, i) => (i * 7919 + seed) % 97);
  if (dtype === "int8") {
    const dv = new DataView(bytes.buffer);
    for (let h = 0; h < slots * kvHeads; h++) dv.setFloat32(h * headBytes, 1 / 64, true);
  } else {
    // 16-bit values with small exponents: keep the high byte of each value moderate
    for (let i = 1; i < bytes.length; i += 2) bytes[i] = 0x3c - (bytes[i] % 8);
  }
  return bytes;
}

function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

const slots = S * Math.ceil(ctx / BLOCK) * BLOCK;
const cache = { k: cachePlane(slots, 1), v: cachePlane(slots, 2) };
const q = Float32Array.from({ length: S * T * heads * headDim }, (_, i) => Math.cos(i * 0.11) * 0.5);
const g = { scale: 1 / Math.sqrt(headDim) };
const step = stepFor();
const what = decodeCtx > 0 ? `decode of ${S} sequence(s) at context ${ctx}` : `prefill of ${T} tokens`;
console.log(`attention ${what}, heads ${heads} / kv heads ${kvHeads}, headDim ${headDim}, ${dtype} KV`);
for (const threads of args.threads.split(",").map(Number)) {
  const rt = new CpuRuntime({ threads });
  try {
    const put = (a: Float32Array | Uint8Array) => {
      const p = rt.heap.alloc(a.byteLength);
      rt.heap.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      return p;
    };
    const [kc, vc, qp, out] = [put(cache.k), put(cache.v), put(q), rt.heap.alloc(q.byteLength)];
    const sd = StepData.forStep(rt.heap, step);
    sd.write(step);
    const kvDim = kvHeads * headDim;
    const qkvIn = args.qkv ? put(Float32Array.from({ length: S * T * (heads * headDim + 2 * kvDim) }, (_, i) => Math.sin(i * 0.3))) : 0;
    const invFreq = put(Float32Array.from({ length: headDim / 2 }, (_, i) => 10000 ** (-(2 * i) / headDim)));
    const sdw = rt.heap.i32(sd.ptr, 16);
    const blas = args.blas || args.ab ? systemBlas() : undefined;
    if ((args.blas || args.ab) && !blas) throw new Error("cpu-attention: --blas needs a system BLAS (OpenBLAS)");
    if (blas && decodeCtx > 0) throw new Error("cpu-attention: --blas times prefills");
    const viaBlas = blas ? new BlasAttention(blas, rt, 1) : undefined;
    const call = (useBlas: boolean) => {
      const p = rt.program.reset();
      if (args.qkv) p.emit(OP.QKV_PREP, qp, qkvIn, kc, vc, sdw[3], sdw[8], invFreq, 0, 0, S * T, heads, kvHeads, headDim, headDim, 0, fbits(1e-5), KV_DTYPE_CODE[dtype]);
      if (!useBlas) p.emit(OP.ATTENTION, out, qp, kc, vc, sd.ptr, heads, kvHeads, headDim, fbits(g.scale), 0, BLOCK, KV_DTYPE_CODE[dtype]);
      if (p.length > 0) rt.run();
      const geometry = { layer: 0, numHeads: heads, numKvHeads: kvHeads, headDim, scale: g.scale, slidingWindow: null };
      if (useBlas) viaBlas!.run({ step, data: sd, q: qp, out, cache: { k: kc, v: vc }, geometry, kvDtype: KV_DTYPE_CODE[dtype], blockSize: BLOCK, threads });
    };
    const kinds = args.ab ? [false, true] : [!!args.blas];
    for (const k of kinds) call(k); // warm-up
    const evict = args.cold ? new Uint8Array(64 << 20) : undefined;
    const times = kinds.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
    for (let i = 0; i < Number(args.reps); i++) {
      kinds.forEach((k, j) => {
        evict?.fill(i);
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        call(k);
        times[j].wall.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        times[j].cpu.push((c.user + c.system) / 1000);
      });
    }
    kinds.forEach((k, j) => {
      const [w, c] = [sorted(times[j].wall), sorted(times[j].cpu)];
      const mid = Math.floor(w.length / 2);
      console.log(`threads ${threads}${args.ab || k ? (k ? ", BLAS" : ", WASM") : ""}: wall ms best ${w[0].toFixed(3)} median ${w[mid].toFixed(3)}; cpu ms best ${c[0].toFixed(3)} median ${c[mid].toFixed(3)}`);
    });
  } finally {
    rt.close();
  }
}

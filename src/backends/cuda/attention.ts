/**
 * Launching paged attention for one layer: the decode kernel over the step's decode rows
 * (split over KV when there are too few rows to fill the GPU, then merged), and the
 * tensor-core prefill kernel over 64-row tiles of the longer sequences.
 */
import { OptionError } from "../../errors.js";
import type { AttentionGeometry } from "../../graph/ir.js";
import type { DevPtr } from "./driver.js";
import { kvSuffix, type ActDType, type CacheDType } from "./dtypes.js";
import type { KernelModules } from "./modules.js";
import type { StepLayout } from "./step-meta.js";

export const MAX_SPLITS = 8;
/** Decode rows the split partials are sized for; more rows never split. */
export const SPLIT_ROWS = 64;
/** Query heads one decode block serves (kernels/attention_decode.cu GMAX). */
export const HEADS_PER_BLOCK = 8;

/** The decode kernel's head-size bucket (its per-lane register arrays); 256 only with the KV cache in the activation type. */
export function decodeHeadBucket(D: number, sameCache = true): 64 | 128 | 256 {
  if (D % 8 !== 0) throw new OptionError("headDim", `${D} is not a multiple of 8, which the cuda attention kernels need`);
  if (D <= 64) return 64;
  if (D <= 128) return 128;
  if (D <= 256 && sameCache) return 256;
  throw new OptionError("headDim", `${D} is more than the cuda attention kernels take (${sameCache ? 256 : "128 with this KV cache type"})`);
}

/**
 * The decode kernel's two forms: "direct" reads each V row from HBM as P V needs it;
 * "staged" loads a key's V row with its K row into shared memory (fewer dependent
 * round trips at small batch). Staged exists for 16-bit and fp8 caches, head size <= 128.
 */
export type DecodeVariant = "direct" | "staged";

export function stagedDecodeFits(cache: CacheDType, D: number): boolean {
  return cache !== "f32" && D <= 128;
}

/** Whether the tensor-core prefill kernel covers this activation type and head size. */
export function prefillKernelFits(act: ActDType, D: number): boolean {
  return act !== "f32" && (D === 64 || D === 128);
}

/**
 * How many KV splits the decode kernel uses: enough blocks for ~2 waves over the SMs,
 * no split shorter than 256 positions, at most MAX_SPLITS.
 */
export function chooseSplits(rows: number, blocksPerRow: number, maxContext: number, smCount: number): number {
  if (rows === 0 || rows > SPLIT_ROWS) return 1;
  const blocks = rows * blocksPerRow;
  if (blocks >= 2 * smCount) return 1;
  const want = Math.ceil((2 * smCount) / blocks);
  const byLength = Math.ceil(maxContext / 256);
  return Math.max(1, Math.min(want, byLength, MAX_SPLITS));
}

export function decodeBlocksPerRow(g: Pick<AttentionGeometry, "numHeads" | "numKvHeads">): number {
  return g.numKvHeads * Math.ceil(g.numHeads / g.numKvHeads / HEADS_PER_BLOCK);
}

export interface AttentionContext {
  k: KernelModules;
  act: ActDType;
  cache: CacheDType;
  blockSize: number;
  kvScale: number;
  /** Step metadata on the device and where each field is. */
  meta: DevPtr;
  layout: StepLayout;
  splits: number;
  /** Split partials: [SPLIT_ROWS, H, MAX_SPLITS, D] and [.., 2] floats. */
  partO: DevPtr;
  partML: DevPtr;
  /** Force the decode kernel for every row (tests). */
  decodeOnly: boolean;
  /** The decode kernel's form for this step (bind-time tactic, or forced). */
  decodeVariant: DecodeVariant;
}

/** out [T, H*D] = attention of q [T, H*D] over the layer's cache (kc, vc). */
export function launchAttention(c: AttentionContext, g: AttentionGeometry, q: DevPtr, out: DevPtr, kc: DevPtr, vc: DevPtr): void {
  const { numHeads: H, numKvHeads: KH, headDim: D } = g;
  const m = (f: keyof StepLayout["at"]) => c.meta + 4 * c.layout.at[f];
  const z = c.layout.sizes;
  const kvs = kvSuffix(c.act, c.cache);
  const window = g.slidingWindow ?? 0;
  if (z.decodeRows > 0) {
    const splits = c.splits;
    const staged = c.decodeVariant === "staged" && stagedDecodeFits(c.cache, D);
    c.k.launch(`attn_decode_${staged ? "sv_" : ""}${kvs}_d${decodeHeadBucket(D, c.act === c.cache)}`, [z.decodeRows, decodeBlocksPerRow(g), splits], [128, 1, 1], [
      ["ptr", out], ["ptr", c.partO], ["ptr", c.partML], ["ptr", q], ["ptr", kc], ["ptr", vc],
      ["ptr", m("decodeRows")], ["ptr", m("tokenSeq")], ["ptr", m("positions")], ["ptr", m("tables")],
      ["i32", z.stride], ["i32", c.blockSize], ["i32", H], ["i32", KH], ["i32", D], ["f32", g.scale], ["i32", window], ["i32", splits], ["f32", c.kvScale],
    ]);
    if (splits > 1) {
      c.k.launch(`attn_combine_${c.act}`, [z.decodeRows, H, 1], [128, 1, 1], [
        ["ptr", out], ["ptr", c.partO], ["ptr", c.partML], ["ptr", m("decodeRows")], ["i32", H], ["i32", D], ["i32", splits],
      ]);
    }
  }
  if (z.tiles > 0) {
    c.k.launch(`attn_prefill_${kvs}_d${D}`, [z.tiles, H, 1], [128, 1, 1], [
      ["ptr", out], ["ptr", q], ["ptr", kc], ["ptr", vc], ["ptr", m("tiles")], ["ptr", m("seqStarts")], ["ptr", m("positions")], ["ptr", m("tables")],
      ["i32", z.stride], ["i32", c.blockSize], ["i32", H], ["i32", KH], ["f32", g.scale], ["i32", window], ["f32", c.kvScale],
    ]);
  }
}

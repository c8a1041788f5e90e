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

/** Splits the partial buffers are sized for (the tiled kernel's most). */
export const MAX_SPLITS = 32;
/** Splits the direct and staged kernels merge (kernels/attention_decode.cu SPLITS_MAX). */
export const DIRECT_MAX_SPLITS = 8;
/** Keys per tile of the tiled decode kernel (kernels/attention_tiled.cu TK). */
export const TILE_KEYS = 32;
/** Keys per tile and query heads per block of the tensor-core decode kernel (kernels/attention_mma.cu BK, GMAX). */
export const MMA_TILE_KEYS = 64;
export const MMA_HEADS_PER_BLOCK = 16;
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
 * The decode kernel's forms: "direct" reads each V row from HBM as P V needs it;
 * "staged" loads a key's V row with its K row into shared memory (fewer dependent
 * round trips at small batch); "tiled" (kernels/attention_tiled.cu) loads a tile of 32
 * keys' K and V rows at once with the whole block, splits down to one tile, and merges
 * the splits in the last block to finish; "mma" (kernels/attention_mma.cu) does the same
 * over 64-key tiles with the query heads of a KV head as the rows of tensor-core tiles.
 * Staged and tiled exist for 16-bit and fp8 caches, head size <= 128; mma for 16-bit
 * activations, head size 64 or 128.
 */
export type DecodeVariant = "direct" | "staged" | "tiled" | "mma";

export function stagedDecodeFits(cache: CacheDType, D: number): boolean {
  return cache !== "f32" && D <= 128;
}

export function mmaDecodeFits(act: ActDType, D: number): boolean {
  return act !== "f32" && (D === 64 || D === 128);
}

/** The form a step launches: the asked one where it exists for these types and head size, else direct. */
export function decodeForm(asked: DecodeVariant, act: ActDType, cache: CacheDType, D: number): DecodeVariant {
  if (asked === "mma") return mmaDecodeFits(act, D) ? "mma" : "direct";
  return asked !== "direct" && stagedDecodeFits(cache, D) ? asked : "direct";
}

/** Whether the tensor-core prefill kernel covers this activation type and head size. */
export function prefillKernelFits(act: ActDType, D: number): boolean {
  return act !== "f32" && (D === 64 || D === 128);
}

/**
 * How many KV splits the decode kernel uses. Direct and staged: enough blocks for ~2
 * waves over the SMs, no split shorter than 256 positions, at most DIRECT_MAX_SPLITS
 * (each split is a pass of a second kernel's merge). Tiled: ~4 blocks an SM (several
 * are resident at once, each waiting on its tile's loads), splits down to one tile,
 * at most MAX_SPLITS; its merge costs no launch.
 */
export function chooseSplits(rows: number, blocksPerRow: number, maxContext: number, smCount: number, form: DecodeVariant = "direct"): number {
  if (rows === 0 || rows > SPLIT_ROWS) return 1;
  const blocks = rows * blocksPerRow;
  const [waves, minKeys, most] =
    form === "tiled" ? [4, TILE_KEYS, MAX_SPLITS] : form === "mma" ? [4, MMA_TILE_KEYS, MAX_SPLITS] : [2, 256, DIRECT_MAX_SPLITS];
  if (blocks >= waves * smCount) return 1;
  const want = Math.ceil((waves * smCount) / blocks);
  const byLength = Math.ceil(maxContext / minKeys);
  return Math.max(1, Math.min(want, byLength, most));
}

/** Blocks a decode row takes: a KV head and up to HEADS_PER_BLOCK of its query heads each (mma: MMA_HEADS_PER_BLOCK). */
export function decodeBlocksPerRow(g: Pick<AttentionGeometry, "numHeads" | "numKvHeads">, form: DecodeVariant = "direct"): number {
  return g.numKvHeads * Math.ceil(g.numHeads / g.numKvHeads / (form === "mma" ? MMA_HEADS_PER_BLOCK : HEADS_PER_BLOCK));
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
  /** The tiled kernel's finished-split counts, [SPLIT_ROWS, decodeBlocksPerRow] int32, zero between launches. */
  splitsDone: DevPtr;
  /** Force the decode kernel for every row (tests). */
  decodeOnly: boolean;
  /** The decode kernel's form for this step (bind-time tactic, or forced; decodeForm already applied). */
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
    const form = decodeForm(c.decodeVariant, c.act, c.cache, D);
    const prefix = { direct: "attn_decode_", staged: "attn_decode_sv_", tiled: "attn_decode_tl_", mma: "attn_decode_mma_" }[form];
    const mergesItself = form === "tiled" || form === "mma";
    c.k.launch(`${prefix}${kvs}_d${decodeHeadBucket(D, c.act === c.cache)}`, [z.decodeRows, decodeBlocksPerRow(g, form), splits], [128, 1, 1], [
      ["ptr", out], ["ptr", c.partO], ["ptr", c.partML], ...(mergesItself ? [["ptr", c.splitsDone] as const] : []), ["ptr", q], ["ptr", kc], ["ptr", vc],
      ["ptr", m("decodeRows")], ["ptr", m("tokenSeq")], ["ptr", m("positions")], ["ptr", m("tables")],
      ["i32", z.stride], ["i32", c.blockSize], ["i32", H], ["i32", KH], ["i32", D], ["f32", g.scale], ["i32", window], ["i32", splits], ["f32", c.kvScale],
    ]);
    if (splits > 1 && !mergesItself) {
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

/**
 * Fuse RoPE (and the Qwen3 q/k norm) into attention and the KV write: for a layer whose
 * q, k, v are column slices of one packed qkv tensor (after QKV fusion),
 *   q -> [rmsnorm] -> rope -> attention,   k -> [rmsnorm] -> rope, v -> kv_write
 * becomes one attention_qkv op that reads the packed rows, writes K/V to the paged cache
 * and attends. It takes the attention op's place, so the layer's cache write still
 * precedes its read.
 */
import { colsOf, type Graph, type Op } from "../ir.js";
import { GraphEditor, absorbable, consumers, producers } from "../rewrite.js";
import { fusionPass } from "./pass.js";

type OpOf<K extends Op["op"]> = Extract<Op, { op: K }>;

interface Chain {
  slice: OpOf<"slice_cols">;
  norm?: OpOf<"rmsnorm">;
  rope?: OpOf<"rope">;
  ops: number[];
}

/** name <- rope <- [rmsnorm per head] <- slice_cols, or name <- slice_cols when withRope is false. */
function chain(g: Graph, prod: Map<string, number>, name: string, withRope: boolean, headDim: number): Chain | undefined {
  const ops: number[] = [];
  const take = (t: string): Op | undefined => {
    const i = prod.get(t);
    if (i === undefined) return undefined;
    ops.push(i);
    return g.ops[i];
  };
  let op = take(name);
  let rope: OpOf<"rope"> | undefined;
  let norm: OpOf<"rmsnorm"> | undefined;
  if (withRope) {
    if (op?.op !== "rope" || op.headDim !== headDim) return undefined;
    rope = op;
    op = take(op.x);
    if (op?.op === "rmsnorm") {
      if (op.groupSize !== headDim) return undefined;
      norm = op;
      op = take(op.x);
    }
  }
  return op?.op === "slice_cols" ? { slice: op, norm, rope, ops } : undefined;
}

export function fuseRopeAttention(g: Graph): Graph {
  const prod = producers(g);
  const cons = consumers(g);
  const ed = new GraphEditor(g);
  g.ops.forEach((att, i) => {
    if (att.op !== "attention") return;
    const w = g.ops.findIndex((o) => o.op === "kv_write" && o.layer === att.layer);
    const write = g.ops[w];
    if (w < 0 || w > i || write.op !== "kv_write") return;
    const q = chain(g, prod, att.q, true, att.headDim);
    const k = chain(g, prod, write.k, true, att.headDim);
    const v = chain(g, prod, write.v, false, att.headDim);
    if (!q || !k || !v) return;
    const qkv = q.slice.x;
    const qDim = att.numHeads * att.headDim;
    const kvDim = att.numKvHeads * att.headDim;
    const laidOut =
      k.slice.x === qkv && v.slice.x === qkv && colsOf(g, qkv) === qDim + 2 * kvDim &&
      q.slice.start === 0 && k.slice.start === qDim && v.slice.start === qDim + kvDim;
    const sameRope =
      q.rope!.invFreq === k.rope!.invFreq && q.rope!.rotary.style === k.rope!.rotary.style && q.rope!.rotary.dim === k.rope!.rotary.dim;
    const sameNorm = Boolean(q.norm) === Boolean(k.norm) && (!q.norm || q.norm.eps === k.norm!.eps);
    if (!laidOut || !sameRope || !sameNorm) return;

    const matched = new Set([i, w, ...q.ops, ...k.ops, ...v.ops]);
    if (![...q.ops, ...k.ops, ...v.ops].every((j) => absorbable(g, cons, j, matched))) return;
    const qRot = q.rope!.out; // its activation now holds the fused op's rotated queries
    const { out, layer, numHeads, numKvHeads, headDim, scale, slidingWindow } = att;
    ed.replace(i, {
      op: "attention_qkv", out, q: qRot, qkv, invFreq: q.rope!.invFreq, rotary: q.rope!.rotary,
      ...(q.norm ? { qNorm: q.norm.weight, kNorm: k.norm!.weight } : {}),
      eps: q.norm?.eps ?? 0,
      layer, numHeads, numKvHeads, headDim, scale, slidingWindow,
    });
    for (const j of [w, ...q.ops, ...k.ops, ...v.ops]) ed.remove(j);
  });
  return ed.build();
}

export const fuseRopeAttentionPass = fusionPass("fuse-rope-attention", "RoPE+attention", "attention_qkv", fuseRopeAttention);

/**
 * Dispatches one graph op to its reference definition (ops.ts, fused.ts): reads inputs
 * with `get`, takes output buffers from `out` (sized for the step), and runs the loop.
 */
import type { Collectives } from "../collectives.js";
import { colsOf, type Graph, type Op } from "../../graph/ir.js";
import type { StepBatch } from "../../graph/step-batch.js";
import * as coll from "./collectives.js";
import { addRmsnorm, attentionQkv, siluMulPacked } from "./fused.js";
import * as ops from "./ops.js";
import { matmulPacked } from "../../quant/matmul.js";
import type { PackedMatrix } from "../../quant/packed.js";

export interface OpContext {
  graph: Graph;
  step: StepBatch;
  cache: ops.LayerCache[];
  blockSize: number;
  /** The other ranks, for the collective ops of a sharded graph. */
  comm?: Collectives;
  get(name: string): Float32Array;
  out(name: string): Float32Array;
  /** A weight kept packed (int8 / int4), if `name` is one. */
  packed?(name: string): PackedMatrix | undefined;
}

export function runOp(op: Op, c: OpContext): void {
  const { step, get, out } = c;
  const cols = (name: string) => colsOf(c.graph, name);
  switch (op.op) {
    case "embedding":
      return ops.embedding(out(op.out), get(op.table), step.tokenIds, cols(op.table));
    case "rmsnorm":
      return ops.rmsnorm(out(op.out), get(op.x), get(op.weight), op.eps, op.groupSize);
    case "add_rmsnorm":
      return addRmsnorm(out(op.out), out(op.sum), get(op.a), get(op.b), get(op.weight), op.eps);
    case "matmul": {
      const x = get(op.x);
      const K = cols(op.x);
      const pw = c.packed?.(op.w);
      if (pw) return matmulPacked(out(op.out), x, pw, op.bias ? get(op.bias) : undefined, x.length / K, K, cols(op.out));
      return ops.matmul(out(op.out), x, get(op.w), op.bias ? get(op.bias) : undefined, x.length / K, K, cols(op.out));
    }
    case "slice_cols":
      return ops.sliceCols(out(op.out), get(op.x), cols(op.x), op.start, cols(op.out));
    case "rope_inv_freq":
      return ops.ropeInvFreqOp(out(op.out), op.rope);
    case "rope":
      return ops.rope(out(op.out), get(op.x), step.positions, get(op.invFreq), op.headDim, op.rotary);
    case "kv_write":
      return ops.kvWrite(c.cache[op.layer], get(op.k), get(op.v), step.slotMapping);
    case "attention":
      return ops.attention(out(op.out), get(op.q), c.cache[op.layer], step, c.blockSize, op);
    case "attention_qkv": {
      const norm = (n?: string) => (n ? get(n) : undefined);
      return attentionQkv(out(op.out), out(op.q), get(op.qkv), get(op.invFreq), norm(op.qNorm), norm(op.kNorm), c.cache[op.layer], step, c.blockSize, op);
    }
    case "silu":
      return ops.silu(out(op.out), get(op.x));
    case "mul":
      return ops.mul(out(op.out), get(op.a), get(op.b));
    case "silu_mul":
      return siluMulPacked(out(op.out), get(op.x), cols(op.out));
    case "add":
      return ops.add(out(op.out), get(op.a), get(op.b));
    case "gather_rows":
      return ops.gatherRows(out(op.out), get(op.x), step.logitRows, cols(op.x));
    case "embedding_part":
      return coll.embeddingPart(out(op.out), get(op.table), step.tokenIds, cols(op.table), op.vocabStart);
    case "all_reduce":
      return coll.allReduce(c.comm, out(op.out), get(op.x));
    case "all_gather":
      return coll.allGather(c.comm, out(op.out), get(op.x), op.parts);
    case "send":
      return coll.send(c.comm, get(op.x), op.peer);
    case "recv":
      return coll.recv(c.comm, out(op.out), op.peer);
  }
}

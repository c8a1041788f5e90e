/**
 * Where every tensor of a bound graph lives in shared memory: packed weights, the
 * activation arena (the engine's memory plan, or one made here for the step's size),
 * and constants the graph computes without a step (rope_inv_freq), made once at bind.
 */
import type { HalfWeight, HalfWeightMap, PackedWeightMap, WeightMap } from "../backend.js";
import { bf16ArrayToF32, f16ArrayToF32 } from "../../checkpoint/fp16.js";
import { ropeInvFreqOp } from "../reference/ops.js";
import { colsOf, type Graph } from "../../graph/ir.js";
import { planMemory, rowsFor, type MemoryPlan, type PlanCapacity } from "../../graph/passes/plan-memory.js";
import type { WasmHeap } from "./heap.js";
import type { PackedDType } from "../../quant/packed.js";
import { inColBlocks, packWeight, wantsColBlocks, type PackedWeight, type WeightDType } from "./layout.js";
import { matmulOnlyWeights } from "../../engine/packed-weights.js";
import { placePacked, type PackedSlot } from "./packed.js";

export interface WeightSlot {
  ptr: number;
  dtype: WeightDType | PackedDType;
  shape: number[];
  bytes: number;
  /** Packed int8 / int4 (ptr is then its q bytes). */
  packed?: PackedSlot;
  /** An f32 matrix kept outside the heap (ptr 0): only the system BLAS reads it (blas-matmul.ts). */
  external?: Float32Array;
  /** Columns per block of a matrix stored in column blocks (layout.ts inColBlocks); absent: row-major. */
  colBlock?: number;
}

export class TensorTable {
  readonly weights = new Map<string, WeightSlot>();
  /** Activations with no dynamic input, computed at bind: name -> pointer. */
  private readonly constants = new Map<string, number>();
  private plan!: MemoryPlan;
  private arena = 0;

  constructor(
    private readonly heap: WasmHeap,
    private readonly graph: Graph,
    weights: WeightMap,
    plan: MemoryPlan | undefined,
    packed: PackedWeightMap = new Map(),
    /** Weights that stay outside the heap where they are f32 (matmul-only weights of a model too big for it). */
    external: ReadonlySet<string> = new Set(),
    /** Whether wide 16-bit matrices only matmuls read go into column blocks (layout.ts wantsColBlocks). */
    colBlocks = true,
    /** Whether int4 in groups of a multiple of 32 goes in the lanes layout (packed.ts; the relaxed build's decode reads it). */
    packedLanes = false,
    /** 16-bit matrices as stored (an engine file's bits): placed as they are, not narrowed from f32. */
    halves: HalfWeightMap = new Map(),
    /** Whether the plan came from the engine (fixed) or is ours (grows with the step). */
    readonly fixedPlan = plan !== undefined,
  ) {
    const matmulOnly = matmulOnlyWeights(graph); // the others (embedding tables) are read by row
    for (const [name, d] of graph.tensors) {
      if (d.kind !== "weight") continue;
      const pm = packed.get(name);
      if (pm) {
        if (pm.rows !== d.shape[0] || pm.cols !== d.shape[1]) throw new Error(`cpu backend: packed weight "${name}" is [${pm.rows}, ${pm.cols}], want [${d.shape.join(", ")}]`);
        const { ptr, slot, bytes } = placePacked(heap, name, pm, { lanes: packedLanes });
        this.weights.set(name, { ptr, dtype: pm.dtype, shape: d.shape, bytes, packed: slot });
        continue;
      }
      const want = d.shape.reduce((a, b) => a * b, 1);
      const half = halves.get(name);
      if (half && half.bits.length !== want) throw new Error(`cpu backend: weight "${name}" has ${half.bits.length} values, want ${want}`);
      let p: PackedWeight | undefined = half && placesAsStored(half) ? { dtype: half.dtype, shape: [...d.shape], bytes: new Uint8Array(half.bits.buffer, half.bits.byteOffset, half.bits.byteLength) } : undefined;
      const values = p ? undefined : (weights.get(name) ?? (half && widenHalf(half)));
      if (!p && (!values || values.length !== want)) throw new Error(`cpu backend: weight "${name}" has ${values?.length ?? "no"} values, want ${want}`);
      p ??= packWeight(values!, d.shape);
      if (external.has(name) && p.dtype === "f32" && values) {
        this.weights.set(name, { ptr: 0, dtype: "f32", shape: d.shape, bytes: values.byteLength, external: values });
        continue;
      }
      if (colBlocks && matmulOnly.has(name) && wantsColBlocks(p.dtype, p.shape)) p = inColBlocks(p);
      const ptr = heap.alloc(p.bytes.byteLength, `weight ${name}`);
      heap.u8(ptr, p.bytes.byteLength).set(p.bytes);
      this.weights.set(name, { ptr, dtype: p.dtype, shape: d.shape, bytes: p.bytes.byteLength, ...(p.colBlock ? { colBlock: p.colBlock } : {}) });
    }
    for (const op of graph.ops) {
      if (op.op !== "rope_inv_freq") continue;
      const n = colsOf(graph, op.out);
      const ptr = heap.alloc(n * 4, op.out);
      ropeInvFreqOp(heap.f32(ptr, n), op.rope);
      this.constants.set(op.out, ptr);
    }
    this.usePlan(plan ?? planMemory(graph, { T: 1, R: 1 }));
  }

  get capacity(): PlanCapacity {
    return this.plan.capacity;
  }

  /** Makes room for a step of T tokens and R logit rows (only without an engine plan). */
  ensure(T: number, R: number): void {
    const cap = this.plan.capacity;
    if (T <= cap.T && R <= cap.R) return;
    if (this.fixedPlan) throw new RangeError(`cpu backend: step of ${T} tokens / ${R} logit rows exceeds the planned ${cap.T} / ${cap.R}`);
    this.usePlan(planMemory(this.graph, { T: Math.max(T, cap.T * 2), R: Math.max(R, cap.R * 2) }));
  }

  private usePlan(plan: MemoryPlan): void {
    this.plan = plan;
    this.arena = this.heap.alloc(plan.arenaBytes, "activation arena");
  }

  /** Pointer of any tensor the graph names. */
  ptr(name: string): number {
    const w = this.weights.get(name);
    if (w?.external) throw new Error(`cpu backend: weight "${name}" lives outside the heap; only the BLAS path reads it`);
    if (w) return w.ptr;
    const c = this.constants.get(name);
    if (c !== undefined) return c;
    const off = this.plan.offsets[name];
    if (off === undefined) throw new Error(`cpu backend: "${name}" has no place in the memory plan`);
    return this.arena + off;
  }

  /** The float32 view of an activation for a step with T tokens and R logit rows. */
  view(name: string, cap: PlanCapacity): Float32Array {
    const d = this.graph.tensors.get(name);
    if (!d || d.kind !== "activation") throw new Error(`cpu backend: "${name}" is not an activation`);
    return this.heap.f32(this.ptr(name), rowsFor(d.rows, cap) * d.cols);
  }

  weightBytes(): number {
    let n = 0;
    for (const w of this.weights.values()) n += w.bytes;
    return n;
  }
}

/** Whether a stored 16-bit matrix goes in as it is: bf16 always, fp16 when every value is finite (the fp16 kernels decode only finite halves). */
function placesAsStored(h: HalfWeight): boolean {
  if (h.dtype === "bf16") return true;
  for (let i = 0; i < h.bits.length; i++) if ((h.bits[i] & 0x7c00) === 0x7c00) return false;
  return true;
}

/** A stored 16-bit matrix as f32 (fp16 with infinities or NaNs: stored f32 then, as packWeight picks). */
function widenHalf(h: HalfWeight): Float32Array {
  return h.dtype === "bf16" ? bf16ArrayToF32(h.bits) : f16ArrayToF32(h.bits);
}

/**
 * Where every tensor of a bound graph lives in shared memory: packed weights, the
 * activation arena (the engine's memory plan, or one made here for the step's size),
 * and constants the graph computes without a step (rope_inv_freq), made once at bind.
 */
import type { HalfWeight, HalfWeightMap, PackedWeightMap, WeightMap } from "../backend.js";
import { f16ArrayToF32 } from "../../checkpoint/fp16.js";
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
      const dense = denseWeight(name, d.shape, weights.get(name), halves.get(name));
      let p = dense.p;
      const values = dense.values;
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

/**
 * A dense weight as the heap takes it: a stored 16-bit matrix as it is (fp16 only where every
 * value is finite: the fp16 kernels decode only finite halves), else its f32 values packed
 * (layout.ts), returned too (an external f32 matrix stays in them).
 */
function denseWeight(name: string, shape: readonly number[], values: Float32Array | undefined, half: HalfWeight | undefined): { p: PackedWeight; values?: Float32Array } {
  const want = shape.reduce((a, b) => a * b, 1);
  if (half) {
    if (half.bits.length !== want) throw new Error(`cpu backend: weight "${name}" has ${half.bits.length} values, want ${want}`);
    if (half.dtype === "bf16" || finiteHalves(half.bits)) return { p: { dtype: half.dtype, shape: [...shape], bytes: new Uint8Array(half.bits.buffer, half.bits.byteOffset, half.bits.byteLength) } };
    values = f16ArrayToF32(half.bits); // stored f32 then, as packWeight picks for non-finite values
  }
  if (!values || values.length !== want) throw new Error(`cpu backend: weight "${name}" has ${values?.length ?? "no"} values, want ${want}`);
  return { p: packWeight(values, shape), values };
}

/** Whether no fp16 value is an infinity or NaN (exponent all ones). */
function finiteHalves(bits: Uint16Array): boolean {
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7c00) === 0x7c00) return false;
  return true;
}

/**
 * Every weight of a graph on the device: planned (formats and bytes, for the memory
 * plan), then uploaded through one float32 scratch buffer and converted or quantized in
 * place, copied as they are (packed int8 / int4 whose layout is a device format), or
 * filled with random values (dummy loading). Also holds float32 vectors the
 * backend adds itself (RoPE frequencies of an unfolded rope_inv_freq op).
 */
import type { WeightMap } from "../backend.js";
import { EngineError } from "../../errors.js";
import type { Graph } from "../../graph/ir.js";
import type { CudaDriver, DevPtr } from "./driver.js";
import type { KernelModules } from "./modules.js";
import { scaleCount, weightBytes, zeroCount } from "./dtypes.js";
import type { PackedSplit } from "./packed-upload.js";
import type { PackedMatrix } from "../../quant/packed.js";
import { convertWeight, describeWeight, fillDummyWeight, weightFormat, weightRoles, type DeviceWeight, type WeightPolicy } from "./weights.js";

export type WeightPlan = Omit<DeviceWeight, "ptr" | "scale" | "zero">[];

/** Formats and bytes of every weight: a packed one kept as it is (packed-upload.ts) in its own format and group, the rest as the policy says. */
export function planWeights(g: Graph, p: WeightPolicy, keep: PackedSplit["keep"] = new Map()): WeightPlan {
  const roles = weightRoles(g);
  const out: WeightPlan = [];
  for (const [name, d] of g.tensors) {
    if (d.kind !== "weight") continue;
    const role = roles.get(name)!;
    const kept = keep.get(name);
    const fmt = kept?.fmt ?? weightFormat(role, d.shape, p);
    // the scale group: a kept packed weight's own; quantized here, i4's option and i8's whole row
    const group = kept?.group ?? (fmt === "i4" || fmt === "i4z" ? p.int4Group : d.shape[d.shape.length - 1]);
    out.push(describeWeight(name, d.shape, role, fmt, group));
  }
  return out;
}

export class DeviceWeightStore {
  private readonly byName = new Map<string, DeviceWeight>();
  private readonly allocations: DevPtr[] = [];
  bytes = 0;

  constructor(
    private readonly driver: CudaDriver,
    private readonly k: KernelModules,
  ) {}

  /**
   * Allocates and fills every planned weight: from `host` where present, else (with
   * `dummy`) random; a weight in neither is an error naming it.
   */
  load(plan: WeightPlan, host: WeightMap, dummy: { seed: number } | null, keep: PackedSplit["keep"] = new Map()): void {
    const smCount = this.driver.info.smCount;
    const biggest = Math.max(0, ...plan.filter((w) => host.has(w.name)).map((w) => w.rows * w.cols));
    const scratch = biggest > 0 ? this.driver.alloc(4 * biggest) : 0;
    const amax = this.driver.alloc(4);
    try {
      for (const d of plan) {
        const kept = keep.get(d.name);
        if (kept) {
          this.uploadPacked(this.allocate(d), kept.m);
          continue;
        }
        const values = host.get(d.name);
        if (!values && !dummy) throw new EngineError(d.name, "weight is missing", "load the engine's weights, or use dummy loading (--load-format dummy) for random ones");
        if (values && values.length !== d.rows * d.cols) throw new EngineError(d.name, `has ${values.length} values, the graph wants ${d.rows * d.cols}`);
        const w = this.allocate(d);
        if (values) {
          this.driver.htodAsync(scratch, values, 4 * values.length, this.k.stream);
          convertWeight(this.k, w, scratch, amax, smCount);
        } else {
          fillDummyWeight(this.k, w, dummy!.seed, smCount);
        }
        // the scratch is reused by the next weight: wait for this one's kernels
        this.driver.syncStream(this.k.stream);
      }
    } finally {
      if (scratch) this.driver.free(scratch);
      this.driver.free(amax);
    }
  }

  /** A packed matrix's bytes, scales (and i4z's zero points) copied as they are: its layout is the device format (packed-upload.ts). */
  private uploadPacked(w: DeviceWeight, m: PackedMatrix): void {
    const qBytes = weightBytes(w.fmt, w.rows, w.cols);
    const scales = scaleCount(w.fmt, w.rows, w.cols, w.group);
    const zeros = zeroCount(w.fmt, w.rows, w.cols, w.group);
    if (m.rows !== w.rows || m.cols !== w.cols || m.q.length !== qBytes || m.scales.length !== scales || (m.zeros?.length ?? 0) !== zeros) {
      throw new EngineError(w.name, `packed ${m.dtype} [${m.rows}, ${m.cols}] does not fit the graph's [${w.rows}, ${w.cols}] as ${w.fmt} (${m.q.length} bytes, ${m.scales.length} scales, ${m.zeros?.length ?? 0} zeros; want ${qBytes}, ${scales}, ${zeros})`);
    }
    this.driver.htod(w.ptr, m.q, qBytes);
    this.driver.htod(w.scale, m.scales, 4 * scales);
    if (zeros) this.driver.htod(w.zero, m.zeros!, zeros);
  }

  /** Adds a float32 vector (e.g. RoPE frequencies) under `name`. */
  addVector(name: string, values: Float32Array): DeviceWeight {
    const w = this.allocate(describeWeight(name, [values.length], "vector", "f32", 0));
    this.driver.htod(w.ptr, values);
    return w;
  }

  private allocate(d: Omit<DeviceWeight, "ptr" | "scale" | "zero">): DeviceWeight {
    const scaleBytes = 4 * scaleCount(d.fmt, d.rows, d.cols, d.group);
    const zeroBytes = zeroCount(d.fmt, d.rows, d.cols, d.group);
    const ptr = this.driver.alloc(d.bytes - scaleBytes - zeroBytes);
    this.allocations.push(ptr);
    const scale = scaleBytes ? this.driver.alloc(scaleBytes) : 0;
    if (scale) this.allocations.push(scale);
    const zero = zeroBytes ? this.driver.alloc(zeroBytes) : 0;
    if (zero) this.allocations.push(zero);
    const w: DeviceWeight = { ...d, ptr, scale, zero };
    this.byName.set(d.name, w);
    this.bytes += d.bytes;
    return w;
  }

  get(name: string): DeviceWeight {
    const w = this.byName.get(name);
    if (!w) throw new EngineError(name, "is not a weight on the device");
    return w;
  }

  all(): DeviceWeight[] {
    return [...this.byName.values()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  dispose(): void {
    for (const p of this.allocations.splice(0)) this.driver.free(p);
    this.byName.clear();
  }
}

/**
 * The loaded kernel modules of one device, and launching kernels by name:
 *   k.launch("add_bf16", [blocks, 1, 1], [256, 1, 1], [["ptr", out], ["ptr", a], ["ptr", b], ["i32", n]])
 * Functions are looked up once and cached; a missing kernel names its unit and the arch.
 */
import { CudaError } from "../../errors.js";
import { ArgPacker, type Arg } from "./args.js";
import type { Cubins } from "./compile.js";
import type { CudaDriver, Ptr } from "./driver.js";

export type Dim3 = [number, number, number];

/** Units whose every kernel starts with pdl_wait() (kernels/common.cuh): launched overlapped when asked. */
const OVERLAP_UNITS = new Set(["elementwise", "norm", "rope_kv", "attention_decode", "attention_tiled", "attention_mma", "attention_prefill", "gemm", "sampling"]);

export class KernelModules {
  private readonly modules: { unit: string; module: Ptr }[] = [];
  private readonly functions = new Map<string, { f: Ptr; overlappable: boolean }>();
  private readonly args = new ArgPacker();
  /** Launches so far (for tests and the bench's kernels-per-step figure). */
  launches = 0;
  /** Called after every launch on the stream (the profiler records an event there); null: off. */
  trace: ((kernel: string) => void) | null = null;
  /** Launch the units' kernels overlapped (programmatic dependent launch; the bound sets it from settings.pdl). */
  overlap = false;

  constructor(
    readonly driver: CudaDriver,
    cubins: Cubins,
    /** The stream every launch goes to (null: the legacy default stream). */
    public stream: Ptr | null = null,
  ) {
    for (const [unit, image] of cubins) this.modules.push({ unit, module: driver.loadModule(image, `${unit}.cu`) });
  }

  fn(name: string): Ptr {
    return this.lookUp(name).f;
  }

  private lookUp(name: string): { f: Ptr; overlappable: boolean } {
    const hit = this.functions.get(name);
    if (hit !== undefined) return hit;
    for (const m of this.modules) {
      const f = this.driver.getFunction(m.module, name);
      if (f !== null) {
        const found = { f, overlappable: OVERLAP_UNITS.has(m.unit) };
        this.functions.set(name, found);
        return found;
      }
    }
    throw new CudaError("cuModuleGetFunction", 500, "CUDA_ERROR_NOT_FOUND", `no kernel "${name}" in the loaded modules`, "the engine's cubins are older than this llmrt: rebuild the engine");
  }

  has(name: string): boolean {
    try {
      this.fn(name);
      return true;
    } catch {
      return false;
    }
  }

  launch(name: string, grid: Dim3, block: Dim3, args: readonly Arg[]): void {
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return; // nothing to do (empty step part)
    const { f, overlappable } = this.lookUp(name);
    if (this.overlap && overlappable) this.driver.launchOverlapped(f, grid, block, this.args.pack(args), this.stream, name);
    else this.driver.launch(f, grid, block, this.args.pack(args), this.stream, name);
    this.launches++;
    this.trace?.(name);
  }

  dispose(): void {
    for (const m of this.modules.splice(0)) this.driver.unloadModule(m.module);
    this.functions.clear();
  }
}

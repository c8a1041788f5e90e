/**
 * A CPU runtime: the kernel module, its shared memory and the thread pool, plus a
 * program buffer. A bound graph owns one; tests and benchmarks make their own.
 */
import { availableParallelism } from "node:os";
import { WasmHeap } from "./heap.js";
import { DEFAULT_SPIN, ThreadPool, type KernelExports } from "./pool.js";
import { INSTR_WORDS, ProgramWriter } from "./program.js";
import { kernelModule, type KernelModule, type SimdLevel } from "./wasm-module.js";
import { wasm } from "./wasm-api.js";

export interface CpuRuntimeOptions {
  /** Threads, the caller's included (default: all cores). */
  threads?: number;
  /** Bytes to reserve up front (weights + cache + buffers), so memory grows rarely. */
  reserveBytes?: number;
  /** Per-thread scratch bytes (default 64 KiB). */
  scratchBytes?: number;
  /** Most kernel calls in one program (default 4096). */
  maxCalls?: number;
  /** Force the plain SIMD128 build (default: relaxed SIMD where the runtime has it). */
  simd?: SimdLevel;
  /** Spin iterations before a waiting thread sleeps. */
  spin?: number;
  /** The compiled kernels to use (a rank thread gets its process's: bundled, it cannot find the .wasm files). */
  kernels?: KernelModule;
  /** Ask Linux for transparent huge pages over the memory (default true; huge-pages.ts). */
  hugePages?: boolean;
}

export function defaultThreads(): number {
  return availableParallelism();
}

export class CpuRuntime {
  readonly heap: WasmHeap;
  readonly pool: ThreadPool;
  readonly simd: SimdLevel;
  readonly threads: number;
  /** Byte offset of the program buffer. */
  readonly progPtr: number;
  readonly program: ProgramWriter;

  constructor(o: CpuRuntimeOptions = {}) {
    const km = o.kernels ?? kernelModule(o.simd);
    this.simd = km.simd;
    this.threads = Math.max(1, Math.floor(o.threads ?? defaultThreads()));
    // the module's static data sits below __heap_base; ask a throwaway instance where that is
    const probe = new WasmHeap(0, 0);
    const base = (new wasm.Instance(km.module, { env: { memory: probe.memory } }).exports as unknown as KernelExports).heapBase();
    const maxCalls = o.maxCalls ?? 4096;
    const scratch = o.scratchBytes ?? 65536;
    this.heap = new WasmHeap(base, (o.reserveBytes ?? 0) + maxCalls * INSTR_WORDS * 4 + scratch * this.threads + 4096, o.hugePages ?? true);
    this.progPtr = this.heap.alloc(maxCalls * INSTR_WORDS * 4, "program");
    this.program = new ProgramWriter(this.heap.i32(this.progPtr, maxCalls * INSTR_WORDS));
    this.pool = new ThreadPool(km.module, this.heap, this.threads, scratch, o.spin ?? DEFAULT_SPIN);
  }

  /** Runs what `program` holds (ended here) on up to `nth` threads. */
  run(nth = this.threads): void {
    this.program.end();
    this.pool.run(this.progPtr, nth);
  }

  /** Starts what `program` holds on the workers of nth threads, not this one (pool.start); then join(). */
  start(nth = this.threads): void {
    this.program.end();
    this.pool.start(this.progPtr, nth);
  }

  join(): void {
    this.pool.join();
  }

  close(): void {
    this.pool.close();
  }
}

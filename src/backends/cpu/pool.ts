/**
 * The thread pool: threads-1 workers plus the calling thread, each running its own
 * instance of the kernel module over the one shared memory. The protocol (control
 * block, generation counter, barrier) lives in assembly/index.ts; this side starts and
 * stops the workers and turns a failed thread into an exception.
 */
import { Worker } from "node:worker_threads";
import { LlmrtError } from "../../errors.js";
import type { WasmHeap } from "./heap.js";
import { wasm, type WasmModule } from "./wasm-api.js";

/** Control block words (mirror of assembly/index.ts). */
export const C_GEN = 0, C_ERROR = 3, C_QUIT = 4, C_SCRATCH = 5, C_SCRATCH_STRIDE = 6, C_NWORKERS = 7, C_SPIN = 9, C_PENDING = 32;
const CTRL_BYTES = 256;

/** Spin iterations before a thread sleeps (idle workers, barriers, completion): tens of microseconds, so an oversubscribed machine does not burn whole time slices spinning. */
export const DEFAULT_SPIN = 20_000;

export interface KernelExports {
  heapBase(): number;
  dispatch(ctrl: number, prog: number, nth: number): number;
  runProgram(ctrl: number, prog: number, tid: number, nth: number): number;
  waitWorkers(ctrl: number): void;
  publish(ctrl: number, prog: number, nth: number): void;
}

// a worker: instantiate, then live in the kernel module's worker loop until QUIT
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, ctrl, tid } = workerData;
const w = new Int32Array(memory.buffer);
try {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  inst.exports.workerLoop(ctrl, tid, 0);
} catch (e) {
  // tell the others: barrier waiters poll the error flag; the caller waits for PENDING
  Atomics.store(w, ctrl / 4 + ${C_ERROR}, 1);
  Atomics.notify(w, ctrl / 4 + 17);
  if (Atomics.sub(w, ctrl / 4 + ${C_PENDING}, 1) === 1) Atomics.notify(w, ctrl / 4 + ${C_PENDING});
  require("node:worker_threads").parentPort.postMessage(String(e && e.stack || e));
}
`;

export class ThreadPool {
  readonly main: KernelExports;
  readonly ctrl: number;
  private readonly workers: Worker[] = [];
  private readonly words: Int32Array;
  private broken = false;

  constructor(
    module: WasmModule,
    private readonly heap: WasmHeap,
    readonly threads: number,
    /** Per-thread scratch bytes (rope angles, attention scores). */
    readonly scratchBytes: number,
    spin = DEFAULT_SPIN,
  ) {
    this.main = new wasm.Instance(module, { env: { memory: heap.memory } }).exports as unknown as KernelExports;
    this.ctrl = heap.alloc(CTRL_BYTES, "thread control");
    const scratch = heap.alloc(scratchBytes * threads, "thread scratch");
    this.words = heap.i32(this.ctrl, CTRL_BYTES / 4);
    this.words[C_SCRATCH] = scratch;
    this.words[C_SCRATCH_STRIDE] = scratchBytes;
    this.words[C_NWORKERS] = threads - 1;
    this.words[C_SPIN] = spin;
    for (let tid = 1; tid < threads; tid++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { module, memory: heap.memory, ctrl: this.ctrl, tid } });
      w.on("message", (m) => console.error(`llmrt: cpu worker ${tid} failed: ${m}`));
      w.unref(); // idle workers must not keep the process alive
      this.workers.push(w);
    }
  }

  /** Runs the program at `prog` on `nth` threads (1..threads), blocking until all are done. */
  run(prog: number, nth = this.threads): void {
    this.assertUsable();
    const n = Math.max(1, Math.min(nth, this.threads));
    let ok: number;
    try {
      ok = this.main.dispatch(this.ctrl, prog, n);
    } catch (e) {
      // this thread trapped mid-program: release the workers before reporting
      Atomics.store(this.words, C_ERROR, 1);
      Atomics.notify(this.words, 17);
      this.main.waitWorkers(this.ctrl);
      this.broken = true;
      throw e;
    }
    if (!ok) this.workerFailed();
  }

  /**
   * Starts the program at `prog` on workers 1 .. nth-1 only and returns at once: this thread
   * is free (for a BLAS call) until join(). The program must not wait at a barrier (its
   * calls F_NOBAR) and its kernels must leave thread 0's share to the others.
   */
  start(prog: number, nth: number): void {
    this.assertUsable();
    this.main.publish(this.ctrl, prog, Math.max(2, Math.min(nth, this.threads)));
  }

  /** Waits for the program start() began. */
  join(): void {
    this.main.waitWorkers(this.ctrl);
    if (Atomics.load(this.words, C_ERROR) !== 0) this.workerFailed();
  }

  private assertUsable(): void {
    if (this.broken) throw new LlmrtError("cpu_backend", "a CPU worker thread failed earlier; this engine cannot run", "reload the model");
  }

  /** A worker reported a failure (its message is already on stderr): this pool runs nothing more. */
  private workerFailed(): never {
    this.broken = true;
    throw new LlmrtError("cpu_backend", "a CPU worker thread failed while running a step (see its message above)", "this is a bug in llmrt's CPU kernels: please report it with the model and options");
  }

  /** Stops the workers. */
  close(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.words, C_QUIT, 1);
    this.main.publish(this.ctrl, 0, 0);
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}

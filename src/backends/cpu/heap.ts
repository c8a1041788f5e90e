/**
 * The CPU backend's memory: one shared WebAssembly.Memory that every thread's kernel
 * instance imports, carved by a bump allocator (nothing is freed: a bound graph lays
 * out its weights, cache and buffers once). wasm32 caps it at 4 GiB.
 */
import { LlmrtError } from "../../errors.js";
import { adviseHugePages } from "./huge-pages.js";
import { wasm, type WasmMemory } from "./wasm-api.js";

const PAGE = 65536;
const MAX_PAGES = 65536;
/** The most a wasm32 memory can hold: 4 GiB. */
export const HEAP_LIMIT_BYTES = MAX_PAGES * PAGE;

/** What the CPU backend needs does not fit one WebAssembly memory. */
export class HeapLimitError extends LlmrtError {
  constructor(
    readonly bytesNeeded: number,
    what: string,
    hint = "store weights in 16 bits (--dtype bf16 or fp16), or lower --max-seqs / --max-seq-len / --max-batch-tokens",
  ) {
    super("cpu_heap_limit", `the CPU backend's memory would need ${bytesNeeded} bytes (${(bytesNeeded / 2 ** 30).toFixed(2)} GiB) for ${what}; WebAssembly memory holds at most 4 GiB (${HEAP_LIMIT_BYTES} bytes)`, hint);
  }
}

export class WasmHeap {
  readonly memory: WasmMemory;
  private top: number;

  /**
   * `base`: first free byte (past the module's static data); `reserve`: bytes expected, to size
   * the memory once; `hugePages`: ask for transparent huge pages over all it may grow to (huge-pages.ts).
   */
  constructor(base: number, reserve: number, hugePages = false) {
    const pages = Math.min(MAX_PAGES, Math.ceil((base + reserve + PAGE) / PAGE));
    this.memory = new wasm.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    // before anything past the static data is touched: pages get their size when first written
    if (hugePages) adviseHugePages(this.memory.buffer, base, HEAP_LIMIT_BYTES);
    this.top = align(base, 64);
  }

  /** Bytes in use. */
  get used(): number {
    return this.top;
  }

  /** A fresh zeroed 64-byte-aligned region of `bytes`; grows the memory if needed. */
  alloc(bytes: number, what = "buffer"): number {
    const at = align(this.top, 64);
    const end = at + Math.max(bytes, 0);
    if (end > HEAP_LIMIT_BYTES) throw new HeapLimitError(end, what);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return at;
  }

  /** The allocation point, to release() everything allocated after it (temporaries). */
  mark(): number {
    return this.top;
  }

  /** Frees everything allocated since mark `m`, zeroing it (alloc promises zeroed memory). */
  release(m: number): void {
    if (m < this.top) new Uint8Array(this.memory.buffer, m, this.top - m).fill(0);
    this.top = Math.min(this.top, m);
  }

  // Pointers read back from i32 words (the step header, programs) are negative past 2 GiB: `>>> 0` makes them addresses again.
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr >>> 0, n);
  }

  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr >>> 0, n);
  }

  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr >>> 0, n);
  }
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

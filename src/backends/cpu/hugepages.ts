/**
 * Transparent huge pages for the backend's WebAssembly memory (Linux). A decode step
 * streams every weight once: with 4 KiB pages that is a TLB miss and page walk every
 * 4 KiB (~110K per token for a 110M-parameter f32 model), and hardware prefetchers stop
 * at each 4 KiB boundary; with 2 MiB pages streaming reads ran ~10% faster here
 * (bench/RESULTS.md). Linux sets THP to `madvise` by default, so we ask for it over the
 * memory's whole reserved range (a shared memory reserves its maximum up front) before
 * any page of it is touched. Best effort: without Linux, koffi or libc, or with
 * LLMRT_HUGEPAGES=0, the memory stays as it is.
 */
import { createRequire } from "node:module";

const MADV_HUGEPAGE = 14;
const HUGE = 2n << 20n;

/** madvise(MADV_HUGEPAGE) over the 2 MiB pages inside [start of bytes, + len). */
type Advise = (bytes: Uint8Array, len: number) => boolean;
let advise: Advise | null | undefined;

function loadAdvise(): Advise | null {
  if (process.platform !== "linux") return null;
  try {
    const koffi = createRequire(import.meta.url)("koffi");
    const libc = koffi.load("libc.so.6");
    // memset(p, 0, 0) writes nothing and returns p: the address of a view's bytes
    const memset = libc.func("void *memset(void *s, int c, size_t n)");
    const madvise = libc.func("int madvise(uintptr_t addr, size_t len, int advice)");
    return (bytes, len) => {
      const start = BigInt(koffi.address(memset(bytes, 0, 0)));
      const from = (start + HUGE - 1n) & ~(HUGE - 1n);
      const end = (start + BigInt(len)) & ~(HUGE - 1n);
      return end > from && madvise(from, end - from, MADV_HUGEPAGE) === 0;
    };
  } catch {
    return null;
  }
}

/**
 * Asks for huge pages over the first `len` bytes of `buffer`'s memory (for a shared
 * WebAssembly memory: its reserved maximum, not only its current length). True when the
 * kernel took the advice; false where it cannot be given or LLMRT_HUGEPAGES=0.
 */
export function adviseHugePages(buffer: ArrayBufferLike, len: number, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.LLMRT_HUGEPAGES === "0" || buffer.byteLength === 0) return false;
  if (advise === undefined) advise = loadAdvise();
  return advise !== null && advise(new Uint8Array(buffer, 0, 1), len);
}

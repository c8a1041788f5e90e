/**
 * Transparent huge pages for the CPU backend's memory (src/backends/cpu/huge-pages.ts): the
 * advice reaches Linux where it has THP, LLMRT_HUGEPAGES=0 turns it off, and a heap advised
 * so reads and writes as any other.
 */
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import { adviseHugePages } from "../../src/backends/cpu/huge-pages.js";
import { WasmHeap } from "../../src/backends/cpu/heap.js";
import { wasm } from "../../src/backends/cpu/wasm-api.js";

const THP = "/sys/kernel/mm/transparent_hugepage/enabled";

test("huge pages: the advice is taken on Linux with THP, refused when turned off", (t) => {
  const memory = new wasm.Memory({ initial: 256, maximum: 65536, shared: true }); // 16 MiB
  assert.equal(adviseHugePages(memory.buffer, 0, 16 << 20, { LLMRT_HUGEPAGES: "0" }), false);
  assert.equal(adviseHugePages(memory.buffer, 0, 1 << 20, {}), false, "no whole 2 MiB page in the range");
  if (process.platform !== "linux" || !existsSync(THP)) return t.skip(`no ${THP}: this kernel has no transparent huge pages`);
  assert.equal(adviseHugePages(memory.buffer, 0, 2 ** 32, {}), true, `madvise(MADV_HUGEPAGE) refused (THP: ${readFileSync(THP, "utf8").trim()})`);
});

test("huge pages: an advised heap holds what is written to it", () => {
  const heap = new WasmHeap(0, 8 << 20, true);
  const p = heap.alloc(6 << 20);
  const v = heap.f32(p, (6 << 20) / 4);
  v.forEach((_, i) => (v[i] = i));
  assert.equal(heap.f32(p + 4 * 123457, 1)[0], 123457);
  assert.equal(heap.f32(p, v.length).at(-1), v.length - 1);
});

/**
 * Huge pages for the CPU backend's memory: the advice is given on Linux (where koffi
 * loads), not given with LLMRT_HUGEPAGES=0, and leaves the memory's contents and its
 * growth alone.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import test from "node:test";
import { adviseHugePages } from "../../src/backends/cpu/hugepages.js";
import { HEAP_LIMIT_BYTES, WasmHeap } from "../../src/backends/cpu/heap.js";
import { wasm } from "../../src/backends/cpu/wasm-api.js";

const thp = "/sys/kernel/mm/transparent_hugepage/enabled";
const thpOn = process.platform === "linux" && existsSync(thp) && !readFileSync(thp, "utf8").includes("[never]");

test("LLMRT_HUGEPAGES=0: no advice is given", () => {
  const m = new wasm.Memory({ initial: 64, maximum: 128, shared: true });
  assert.equal(adviseHugePages(m.buffer, 128 * 65536, { LLMRT_HUGEPAGES: "0" }), false);
});

test("a range holding no whole 2 MiB page gets no advice", () => {
  const m = new wasm.Memory({ initial: 1, maximum: 1, shared: true });
  assert.equal(adviseHugePages(m.buffer, 65536, {}), false);
});

test("the heap's memory: advised where Linux has THP, contents and growth unchanged", { skip: thpOn ? false : "no transparent huge pages here (not Linux, or THP set to never)" }, () => {
  const m = new wasm.Memory({ initial: 512, maximum: HEAP_LIMIT_BYTES / 65536, shared: true });
  const before = new Uint8Array(m.buffer, 0, 64 << 10).map((_, i) => i % 251);
  new Uint8Array(m.buffer).set(before);
  assert.equal(adviseHugePages(m.buffer, HEAP_LIMIT_BYTES, {}), true);
  assert.deepEqual(new Uint8Array(m.buffer, 0, 64 << 10), before);
  m.grow(64); // past the length it had when advised
  new Uint8Array(m.buffer).fill(7, 512 * 65536);
  assert.equal(new Uint8Array(m.buffer)[576 * 65536 - 1], 7);
  // the backend's heap asks for it itself and still hands out zeroed memory
  const heap = new WasmHeap(1024, 8 << 20);
  const p = heap.alloc(4 << 20);
  assert.ok(heap.u8(p, 4 << 20).every((b) => b === 0));
});

/**
 * Packed int8 / int4 weights (src/quant/packed.ts) in the CPU backend's shared memory: q
 * bytes, f32 scales [rows, groups], zero points [rows, groups] (asymmetric int4), read by
 * assembly/qmatmul.ts directly; nothing is dequantized at bind. Where the decode kernel
 * takes 4 rows at a time (groups of one row, or of a multiple of 32 columns up to 2048),
 * the q bytes are reordered as they are copied in ("interleaved"): blocks of 4 rows, each
 * row padded to a multiple of 32 columns, and within a block the rows' 32-column chunks side
 * by side (chunk 0 of rows 0..3, chunk 1 of rows 0..3, ...), so a block streams from memory
 * in one pass. The bytes of a chunk keep their order (int4: column 2i low nibble, 2i+1 high).
 * Int4 in groups of a multiple of 32 goes one step further where the relaxed build runs
 * (`lanes`): within a block's 64 bytes of a chunk the rows' 4-byte words are transposed (16 i +
 * 4 r: row r's bytes 4i .. 4i+3) and the scales and zero points are in blocks of 4 rows too, so
 * the decode kernel (assembly/qmatmul8.ts, DT_Q4L) gets the 4 rows' sums in the 4 lanes.
 * GGUF K-quants go in their kernel form (kquant-layout.ts: scales decoded, quants as they are).
 */
import { KQUANT_DTYPES, isKQuant } from "../../checkpoint/ggml-kquants.js";
import { isInt8Storage, type PackedDType, type PackedMatrix } from "../../quant/packed.js";
import type { WasmHeap } from "./heap.js";
import { KQUANT_CODE, kernelFormBytes, toKernelForm } from "./kquant-layout.js";

/**
 * The CPU backend's packed formats; codes mirror assembly/qmatmul.ts (DT_Q8, DT_Q4; DT_Q8I,
 * DT_Q4I interleaved; w8a8: int8 bytes with the ACT8 flag, its tokens quantized to int8 too)
 * and assembly/kquant.ts (DT_Q4K ..).
 */
export const CPU_PACKED_DTYPES: readonly PackedDType[] = ["int8", "int4", "w8a8", ...KQUANT_DTYPES];
const ACT8 = 0x10000;
export const PACKED_CODE: Partial<Record<PackedDType, number>> = { int8: 4, int4: 5, w8a8: 4 | ACT8, ...KQUANT_CODE };
const INTERLEAVED_CODE: Partial<Record<PackedDType, number>> = { int8: 6, int4: 7, w8a8: 6 | ACT8 };
/** assembly/qmatmul.ts DT_Q4L: int4 in groups of a multiple of 32, a block's 4 rows in the lanes. */
const LANES_CODE = 11;

/** The kernel may read up to 31 bytes past a row's end (last chunk, against zero activations). */
const TAIL_PAD = 32;
/** qmatmul.ts's SEG: columns of one group summed in i32 before scaling. */
const SEG = 2048;

export interface PackedSlot {
  dtype: PackedDType;
  code: number;
  groupSize: number;
  /** f32 [rows, groups] */
  scales: number;
  /** u8 [rows, groups], or 0 (zero point 8) */
  zeros: number;
}

/** Whether p's q bytes go in interleaved (the row-block decode kernel reads its groups). */
export function interleaves(p: PackedMatrix): boolean {
  const G = Math.min(p.layout.groupSize, p.cols);
  return G >= p.cols || (G % 32 === 0 && G <= SEG);
}

/** Bytes of q as placed. */
function qBytes(p: PackedMatrix, interleave: boolean): number {
  if (!interleave) return p.q.byteLength;
  const chunk = isInt8Storage(p.dtype) ? 32 : 16;
  return Math.ceil(p.rows / 4) * 4 * Math.ceil(p.cols / 32) * chunk;
}

export function packedSlotBytes(p: PackedMatrix): number {
  if (isKQuant(p.dtype)) return kernelFormBytes(p.dtype, p.rows, p.cols) + 64;
  // f32 scales and u8 zero points of up to 3 padding rows (the lanes layout's last block)
  const pad = 3 * Math.ceil(p.cols / 32) * (4 + 1);
  return Math.max(p.q.byteLength, qBytes(p, interleaves(p))) + TAIL_PAD + p.scales.byteLength + (p.zeros?.byteLength ?? 0) + pad + 3 * 64;
}

/** Whether p goes in the lanes layout where the kernels allow it: int4 in groups of a multiple of 32 columns. */
export function takesLanes(p: PackedMatrix): boolean {
  return p.dtype === "int4" && p.cols >= 32 && Math.min(p.layout.groupSize, p.cols) % 32 === 0;
}

/** 32-bit words of a byte view, where it starts on a word (typed arrays from a file or a slice do; a heap view always). */
function words(b: Uint8Array): Uint32Array | null {
  return b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : null;
}

/**
 * p's q bytes into dst in the lanes layout (DT_Q4L): q [ceil(rows / 4)][chunks][64] with row r's
 * bytes 4i .. 4i+3 of a chunk at 16 i + 4 r. Whole 4-byte words move where rows are whole chunks
 * (cols % 32 == 0: every GGUF and most checkpoints), bytes otherwise. dst comes zeroed
 * (WasmHeap.alloc), which is the padding.
 */
function lanesQ(dst: Uint8Array, p: PackedMatrix): void {
  const rb = (p.cols + 1) >> 1;
  const chunks = Math.ceil(p.cols / 32);
  const src32 = p.cols % 32 === 0 ? words(p.q) : null;
  const dst32 = words(dst);
  if (src32 && dst32) {
    // row n's chunk c is words 4c .. 4c+3 of the row; word i goes to word 4i + r of its block's chunk
    const rw = rb >> 2;
    for (let n = 0; n < p.rows; n++) {
      const s0 = n * rw;
      let d = (n >> 2) * chunks * 16 + (n & 3);
      for (let c = 0; c < chunks; c++, d += 16) {
        const s = s0 + 4 * c;
        dst32[d] = src32[s];
        dst32[d + 4] = src32[s + 1];
        dst32[d + 8] = src32[s + 2];
        dst32[d + 12] = src32[s + 3];
      }
    }
    return;
  }
  for (let n = 0; n < p.rows; n++) {
    for (let c = 0; c < chunks; c++) {
      const base = ((n >> 2) * chunks + c) * 64 + (n & 3) * 4;
      for (let j = 0; j < 16 && c * 16 + j < rb; j++) dst[base + (j >> 2) * 16 + (j & 3)] = p.q[n * rb + c * 16 + j];
    }
  }
}

/** p's scales f32 and zero points u8 in blocks of 4 rows, as the lanes layout reads them: [ceil(rows / 4)][groups][4]; padding 0. */
function lanesScales(p: PackedMatrix): { scales: Float32Array; zeros: Uint8Array | null } {
  const groups = Math.ceil(p.cols / Math.min(p.layout.groupSize, p.cols));
  const blocks = Math.ceil(p.rows / 4);
  const scales = new Float32Array(blocks * groups * 4);
  const zeros = p.zeros ? new Uint8Array(blocks * groups * 4) : null;
  for (let n = 0; n < p.rows; n++) {
    for (let g = 0; g < groups; g++) {
      const at = ((n >> 2) * groups + g) * 4 + (n & 3);
      scales[at] = p.scales[n * groups + g];
      if (zeros) zeros[at] = p.zeros![n * groups + g];
    }
  }
  return { scales, zeros };
}

/** q [rows, row bytes] -> dst (zeroed: the padding) in the interleaved layout; whole words where rows are whole chunks. */
function interleave(dst: Uint8Array, p: PackedMatrix): void {
  const chunk = isInt8Storage(p.dtype) ? 32 : 16;
  const rb = isInt8Storage(p.dtype) ? p.cols : (p.cols + 1) >> 1;
  const chunks = Math.ceil(p.cols / 32);
  const src32 = p.cols % 32 === 0 ? words(p.q) : null;
  const dst32 = words(dst);
  if (src32 && dst32) {
    // rows are whole chunks: row n's chunk c goes to block n >> 2, chunk c, slot n & 3 (the copies
    // written out: a loop over a chunk's words ran ~3x slower, seconds on a 1 GB model)
    const rw = rb >> 2;
    for (let n = 0; n < p.rows; n++) {
      let s = n * rw;
      if (chunk === 32) {
        for (let c = 0, d = ((n >> 2) * 4 * chunks + (n & 3)) * 8; c < chunks; c++, d += 32, s += 8) {
          dst32[d] = src32[s], dst32[d + 1] = src32[s + 1], dst32[d + 2] = src32[s + 2], dst32[d + 3] = src32[s + 3];
          dst32[d + 4] = src32[s + 4], dst32[d + 5] = src32[s + 5], dst32[d + 6] = src32[s + 6], dst32[d + 7] = src32[s + 7];
        }
      } else {
        for (let c = 0, d = ((n >> 2) * 4 * chunks + (n & 3)) * 4; c < chunks; c++, d += 16, s += 4) {
          dst32[d] = src32[s], dst32[d + 1] = src32[s + 1], dst32[d + 2] = src32[s + 2], dst32[d + 3] = src32[s + 3];
        }
      }
    }
    return;
  }
  for (let n = 0; n < p.rows; n++) {
    const row = p.q.subarray(n * rb, (n + 1) * rb);
    const base = (n >> 2) * 4 * chunks * chunk + (n & 3) * chunk;
    for (let c = 0; c < chunks; c++) dst.set(row.subarray(c * chunk, Math.min(rb, (c + 1) * chunk)), base + c * 4 * chunk);
  }
}

/**
 * Copies p into the heap; returns the q pointer, the slot and the bytes a step reads.
 * `interleave: false` keeps q row-major (benchmarks compare the layouts); `lanes: true` (the
 * relaxed build runs: its decode kernel reads the lanes layout) places int4 in groups of a
 * multiple of 32 so.
 */
export function placePacked(heap: WasmHeap, name: string, p: PackedMatrix, opts: { interleave?: boolean; lanes?: boolean } = {}): { ptr: number; slot: PackedSlot; bytes: number } {
  const plain = PACKED_CODE[p.dtype];
  if (plain === undefined) throw new Error(`cpu backend: weight "${name}" is packed as ${p.dtype}, which the cpu kernels do not read (have: ${CPU_PACKED_DTYPES.join(", ")})`);
  if (isKQuant(p.dtype)) {
    const n = kernelFormBytes(p.dtype, p.rows, p.cols);
    const ptr = heap.alloc(n, `weight ${name}`);
    toKernelForm(heap.u8(ptr, n), p);
    return { ptr, slot: { dtype: p.dtype, code: plain, groupSize: p.layout.groupSize, scales: 0, zeros: 0 }, bytes: n };
  }
  const il = (opts.interleave ?? true) && interleaves(p);
  if (il && opts.lanes && takesLanes(p)) return placeLanes(heap, name, p);
  const n = qBytes(p, il);
  const ptr = heap.alloc(n + TAIL_PAD, `weight ${name}`);
  if (il) interleave(heap.u8(ptr, n), p);
  else heap.u8(ptr, n).set(p.q);
  return { ptr, ...placeScales(heap, name, p, il ? INTERLEAVED_CODE[p.dtype]! : plain, p.scales, p.zeros, n) };
}

function placeLanes(heap: WasmHeap, name: string, p: PackedMatrix): { ptr: number; slot: PackedSlot; bytes: number } {
  const n = Math.ceil(p.rows / 4) * Math.ceil(p.cols / 32) * 64;
  const ptr = heap.alloc(n, `weight ${name}`);
  lanesQ(heap.u8(ptr, n), p); // straight into the heap: no copy of the whole matrix on the way
  const l = lanesScales(p);
  return { ptr, ...placeScales(heap, name, p, LANES_CODE, l.scales, l.zeros, n) };
}

/** The scales and zero points (in the layout `code` reads) into the heap: p's slot, and the bytes a step reads with q's `qBytes`. */
function placeScales(heap: WasmHeap, name: string, p: PackedMatrix, code: number, s: Float32Array, z: Uint8Array | null, qBytes: number): { slot: PackedSlot; bytes: number } {
  const scales = heap.alloc(s.byteLength, `scales of ${name}`);
  heap.f32(scales, s.length).set(s);
  let zeros = 0;
  if (z) {
    zeros = heap.alloc(z.byteLength, `zero points of ${name}`);
    heap.u8(zeros, z.byteLength).set(z);
  }
  const slot = { dtype: p.dtype, code, groupSize: Math.min(p.layout.groupSize, p.cols), scales, zeros };
  return { slot, bytes: qBytes + s.byteLength + (z?.byteLength ?? 0) };
}

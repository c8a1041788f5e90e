/**
 * Programs: the kernel calls of one forward pass, encoded for assembly/index.ts's
 * interpreter (32 i32 words per call: opcode|flags, then arguments; pointers are byte
 * offsets in the shared memory, floats travel as their bits). Opcodes mirror the
 * assembly side.
 */
import type { KvDType } from "../backend.js";
import type { WeightDType } from "./layout.js";

export const OP = {
  END: 0,
  MATMUL: 1,
  RMSNORM: 2,
  ADD_RMSNORM: 3,
  ELEMENTWISE: 4,
  SILU_MUL: 5,
  SLICE_COLS: 6,
  GATHER_ROWS: 7,
  EMBEDDING: 8,
  KV_WRITE: 9,
  ROPE: 10,
  QKV_PREP: 11,
  ATTENTION: 12,
  ARGMAX: 13,
  TOPK: 14,
  READ_SUM: 15,
  MATMUL_Q: 16,
  WIDEN_ROWS: 17,
  DEQUANT_ROWS: 18,
  QUANT_ROWS_I8: 19,
  GATHER_KV: 20,
  SOFTMAX_CAUSAL: 21,
} as const;

/** No barrier after the call: the next call does not read what this one wrote. */
export const F_NOBAR = 0x100;
export const INSTR_WORDS = 32;

export const ELEMENTWISE = { add: 0, mul: 1, silu: 2 } as const;
export const DTYPE_CODE: Record<WeightDType, number> = { f32: 0, bf16: 1, f16: 2 };
/** KV cache storage codes: the weight codes plus int8 (assembly/kv-int8.ts). */
export const KV_DTYPE_CODE: Record<KvDType, number> = { ...DTYPE_CODE, int8: 3, fp8: -1 /* refused at bind */ };
export const ROPE_STYLE = { neox: 0, interleaved: 1 } as const;

const f32bits = new Float32Array(1);
const i32bits = new Int32Array(f32bits.buffer);
/** The bits of x as float32, as an i32 word. */
export function fbits(x: number): number {
  f32bits[0] = x;
  return i32bits[0];
}

/** Appends calls to a program buffer (an Int32Array view of shared memory). */
export class ProgramWriter {
  private n = 0;

  constructor(private readonly words: Int32Array) {}

  get length(): number {
    return this.n;
  }

  reset(): this {
    this.n = 0;
    return this;
  }

  /** One call: opcode (| F_NOBAR) and up to 31 argument words (the rest 0). */
  emit(op: number, ...args: number[]): this {
    const at = this.n * INSTR_WORDS;
    if (at + INSTR_WORDS > this.words.length) throw new RangeError(`cpu program: more than ${this.words.length / INSTR_WORDS} calls`);
    if (args.length >= INSTR_WORDS) throw new RangeError(`cpu program: ${args.length} arguments for op ${op}`);
    this.words[at] = op;
    for (let i = 0; i < args.length; i++) this.words[at + 1 + i] = args[i];
    this.words.fill(0, at + 1 + args.length, at + INSTR_WORDS); // arguments not given read as 0
    this.n++;
    return this;
  }

  end(): this {
    this.words[this.n * INSTR_WORDS] = OP.END;
    return this;
  }
}

/**
 * The Checkpoint every reader returns: a table of tensors whose bytes are read, one
 * tensor at a time, only when asked.
 */
import { CheckpointError } from "../errors.js";
import type { PackedMatrix } from "../quant/packed.js";
import type { ModelConfig } from "./config.js";
import type { Bits16, Checkpoint, CheckpointFormat, TensorInfo, TokenizerSource } from "./types.js";

export interface LazyTensor {
  info: TensorInfo;
  read(): Float32Array;
  /** Stored bytes, for block-quantized tensors kept packed. */
  raw?: () => Uint8Array;
  /** Stored values of a 16-bit tensor. */
  bits16?: () => Bits16;
  /** The weight in a packed format, when its stored form maps onto one exactly (AWQ / GPTQ). */
  packed?: () => PackedMatrix | undefined;
}

export class LazyCheckpoint implements Checkpoint {
  private closed = false;

  constructor(
    readonly format: CheckpointFormat,
    readonly path: string,
    readonly config: ModelConfig,
    readonly tokenizer: TokenizerSource,
    private readonly table: Map<string, LazyTensor>,
    private readonly onClose: () => void,
    readonly quantMethod?: "awq" | "gptq",
  ) {}

  tensors(): TensorInfo[] {
    return [...this.table.values()].map((t) => ({ ...t.info, shape: [...t.info.shape] }));
  }

  has(name: string): boolean {
    return this.table.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.get(name).info;
    return { ...t, shape: [...t.shape] };
  }

  readF32(name: string): Float32Array {
    if (this.closed) throw new CheckpointError(this.path, `readF32("${name}") after close()`, "open the checkpoint again");
    return this.get(name).read();
  }

  readRaw(name: string): Uint8Array | undefined {
    if (this.closed) throw new CheckpointError(this.path, `readRaw("${name}") after close()`, "open the checkpoint again");
    return this.get(name).raw?.();
  }

  readBits16(name: string): Bits16 | undefined {
    if (this.closed) throw new CheckpointError(this.path, `readBits16("${name}") after close()`, "open the checkpoint again");
    return this.get(name).bits16?.();
  }

  readPacked(name: string): PackedMatrix | undefined {
    if (this.closed) throw new CheckpointError(this.path, `readPacked("${name}") after close()`, "open the checkpoint again");
    return this.get(name).packed?.();
  }

  close(): void {
    if (!this.closed) this.onClose();
    this.closed = true;
  }

  private get(name: string): LazyTensor {
    const t = this.table.get(name);
    if (!t) {
      const some = [...this.table.keys()].slice(0, 4).join(", ");
      throw new CheckpointError(this.path, `no tensor named "${name}" (it has ${this.table.size}: ${some}, ...)`,
        "use canonical names from src/checkpoint/names.ts");
    }
    return t;
  }
}

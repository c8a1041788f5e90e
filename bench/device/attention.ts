/**
 * Decode attention alone, for the device check: each kernel form (direct, staged,
 * tiled, mma) at 1 / 8 / 64 rows and 256 / 1024 / 4096 cached positions, on the attention
 * geometry of each shape (two layers: attention time does not depend on the depth),
 * as CUDA-graph replays (CudaBound.timeAttention), with the KV bytes each call reads
 * over the time as GB/s. The bind-time pick reads the same timer.
 */
import type { DecodeVariant } from "../../src/backends/cuda/attention.js";
import type { CudaBackendOptions } from "../../src/backends/cuda/settings.js";
import { shapeConfig } from "./shapes.js";
import { dummyEngine } from "./speed.js";

export interface AttentionRow {
  shape: string;
  rows: number;
  context: number;
  form: DecodeVariant;
  us: number | null;
  gbps: number | null;
}

export function attentionTable(shapes: string[], o: CudaBackendOptions, log: (line: string) => void, rowsList = [1, 8, 64], contexts = [256, 1024, 4096]): AttentionRow[] {
  const out: AttentionRow[] = [];
  const maxRows = Math.max(...rowsList);
  for (const shape of shapes) {
    const config = { ...shapeConfig(shape), numLayers: 2 };
    const e = dummyEngine(config, maxRows, Math.max(...contexts) + 64, 2048, o);
    try {
      const kvBytesPerPos = 2 * config.numKvHeads * config.headDim * 2; // K and V, bf16
      for (const rows of rowsList) {
        for (const context of contexts) {
          const cells: string[] = [];
          for (const form of ["direct", "staged", "tiled", "mma"] as const) {
            const us = e.bound.timeAttention(rows, context, form, 20);
            const gbps = us === null ? null : (rows * context * kvBytesPerPos) / (us * 1e3);
            out.push({ shape, rows, context, form, us, gbps });
            cells.push(`${form} ${us === null ? "-" : `${us.toFixed(1)} us ${gbps!.toFixed(0)} GB/s`}`);
          }
          log(`${shape} attention rows ${rows} ctx ${context}: ${cells.join(", ")}`);
        }
      }
    } finally {
      e.bound.dispose();
    }
  }
  return out;
}

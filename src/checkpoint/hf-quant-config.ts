/**
 * The `quantization_config` of a pre-quantized Hugging Face checkpoint (config.json, or
 * the quantizer's own quantize_config.json / quant_config.json beside it), reduced to
 * what the AWQ and GPTQ readers need. Every variant we cannot read exactly is a
 * ConfigError naming the file, the field and what is supported.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.js";

type Json = Record<string, unknown>;

export interface AwqConfig {
  method: "awq";
  file: string;
  bits: 4;
  /** Input columns per group; null = one group per row (group_size -1). */
  groupSize: number | null;
}

export interface GptqConfig {
  method: "gptq";
  file: string;
  bits: 2 | 3 | 4 | 8;
  groupSize: number | null;
  descAct: boolean;
  /** Added to stored zero points: 1 for GPTQ v1 checkpoints (stored as zero - 1), 0 for gptq_v2. */
  zeroOffset: 0 | 1;
}

export type HfQuantConfig = AwqConfig | GptqConfig;

const SUPPORTED = `"awq" (4-bit, version "gemm", zero_point true) and "gptq" (2/3/4/8-bit, checkpoint_format "gptq" or "gptq_v2")`;
const HINT = "use an AWQ GEMM or GPTQ release of the model, or its float16/bfloat16 weights";

/** Side files that older quantizers write instead of (or as well as) config.json's field, with the method they imply. */
const SIDE_FILES: [string, "gptq" | "awq"][] = [["quantize_config.json", "gptq"], ["quant_config.json", "awq"]];

/** The checkpoint's quantization, or null for a float checkpoint. */
export function hfQuantConfig(config: Json, configFile: string, dir: string): HfQuantConfig | null {
  const q = config.quantization_config;
  if (q !== undefined && q !== null) {
    if (typeof q !== "object" || Array.isArray(q)) throw new ConfigError(configFile, "quantization_config", `must be an object, got ${JSON.stringify(q)}`);
    return parse(q as Json, configFile, "quantization_config.", undefined);
  }
  for (const [name, method] of SIDE_FILES) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    let j: unknown;
    try {
      j = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ConfigError(file, "(file)", `is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof j !== "object" || j === null || Array.isArray(j)) throw new ConfigError(file, "(file)", "is not a JSON object");
    return parse(j as Json, file, "", method);
  }
  return null;
}

function parse(q: Json, file: string, prefix: string, dfltMethod: "gptq" | "awq" | undefined): HfQuantConfig {
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(file, prefix + field, `${problem}; llmrt reads ${SUPPORTED}`, HINT);
  };
  const method = q.quant_method ?? dfltMethod;
  if (method !== "awq" && method !== "gptq") return fail("quant_method", `${JSON.stringify(method)} is not supported`);
  const pick = (...fields: string[]): [string, unknown] => {
    for (const f of fields) if (q[f] !== undefined && q[f] !== null) return [f, q[f]];
    return [fields[0], undefined];
  };
  const [bitsField, bits] = pick("bits", "w_bit");
  const [groupField, group] = pick("group_size", "q_group_size");
  if (!Number.isSafeInteger(group) || ((group as number) <= 0 && group !== -1)) fail(groupField, `must be a positive integer or -1, got ${JSON.stringify(group)}`);
  const groupSize = group === -1 ? null : (group as number);

  if (method === "awq") {
    if (bits !== 4) fail(bitsField, `${JSON.stringify(bits)} bits is not supported for AWQ`);
    const version = String(q.version ?? "gemm").toLowerCase();
    if (version !== "gemm") fail("version", `AWQ version ${JSON.stringify(q.version)} (its own packed layout) is not supported`);
    if (q.zero_point === false) fail("zero_point", "AWQ without zero points is not supported");
    if (q.backend !== undefined && q.backend !== null && q.backend !== "autoawq") fail("backend", `AWQ packed by ${JSON.stringify(q.backend)} is not supported (only "autoawq")`);
    return { method, file, bits: 4, groupSize };
  }
  if (bits !== 2 && bits !== 3 && bits !== 4 && bits !== 8) fail(bitsField, `${JSON.stringify(bits)} bits is not supported for GPTQ`);
  if (q.is_marlin_format === true) fail("is_marlin_format", "the Marlin layout is not supported");
  const format = q.checkpoint_format ?? "gptq";
  if (format !== "gptq" && format !== "gptq_v2") fail("checkpoint_format", `${JSON.stringify(format)} is not supported`);
  const descAct = q.desc_act === true;
  return { method, file, bits: bits as GptqConfig["bits"], groupSize, descAct, zeroOffset: format === "gptq" ? 1 : 0 };
}

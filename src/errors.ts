/**
 * Typed errors. Every error llmrt raises on bad input says which file or field,
 * what was expected, and what to try. `code` is stable for programs to switch on.
 */
export class LlmrtError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message}\n  hint: ${hint}` : message);
    this.name = new.target.name;
  }
}

/** A model file is missing, truncated, malformed or lies about its contents. */
export class CheckpointError extends LlmrtError {
  constructor(
    readonly file: string,
    problem: string,
    hint = "check that the file is complete and in a supported format (safetensors, GGUF v2/v3, llama2.c .bin)",
  ) {
    super("checkpoint", `${file}: ${problem}`, hint);
  }
}

/** The checkpoint is well-formed but its architecture or dtype is not supported. */
export class UnsupportedModelError extends LlmrtError {
  constructor(what: string, hint?: string) {
    super("unsupported_model", what, hint);
  }
}

/** A config field is missing or has an impossible value. */
export class ConfigError extends LlmrtError {
  constructor(
    readonly file: string,
    readonly field: string,
    problem: string,
    hint?: string,
  ) {
    super("config", `${file}: field "${field}": ${problem}`, hint);
  }
}

/** A tokenizer file is missing or malformed, or text cannot be encoded. */
export class TokenizerError extends LlmrtError {
  constructor(readonly file: string, problem: string, hint?: string) {
    super("tokenizer", `${file}: ${problem}`, hint);
  }
}

/** A user-supplied option is out of range or contradicts another. */
export class OptionError extends LlmrtError {
  constructor(readonly option: string, problem: string, hint?: string) {
    super("option", `${option}: ${problem}`, hint);
  }
}

/** An engine dir is from another format version or target, damaged, or asked for more than it was built for. */
export class EngineError extends LlmrtError {
  constructor(readonly where: string, problem: string, hint?: string) {
    super("engine", `${where}: ${problem}`, hint);
  }
}

/** No usable CUDA driver or GPU: says where llmrt looked and which variable points it elsewhere. */
export class CudaUnavailableError extends LlmrtError {
  constructor(
    problem: string,
    readonly searched: string[] = [],
    hint = "install the NVIDIA driver (libcuda.so.1), or set LLMRT_CUDA_LIB_DIR to the folder that holds it; the reference and CPU targets need no GPU",
  ) {
    super("cuda_unavailable", searched.length ? `${problem} (looked in: ${searched.join(", ")})` : problem, hint);
  }
}

/** A CUDA driver, NVRTC or cuBLASLt call failed: which call, its error code and name. */
export class CudaError extends LlmrtError {
  constructor(
    readonly call: string,
    readonly status: number,
    readonly statusName: string,
    detail = "",
    hint?: string,
  ) {
    super("cuda", `${call} failed: ${statusName} (${status})${detail ? `: ${detail}` : ""}`, hint);
  }
}

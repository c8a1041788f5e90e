/** Structured output: constraints compiled to token masks. */
export { compileConstraint, CONSTRAINT_CACHE_SIZE } from "./compile.js";
export { CompiledConstraint, ConstraintState, type ConstraintStatus, type MaskStats } from "./constraint.js";
export { normalizeConstraint, canonicalJson, type ConstraintSpec, type NormalizedConstraint } from "./spec.js";
export { schemaToRegex, SchemaError, ANY_VALUE_DEPTH } from "./json-schema-regex.js";
export { schemaProblem, schemaValidator } from "./schema-check.js";
export { responseFormatToConstraint } from "./response-format.js";
export type { TokenMask } from "./token-mask.js";

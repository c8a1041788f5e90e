/**
 * Spec + tokenizer -> CompiledConstraint, cached: an LRU per tokenizer keyed by the
 * canonical spec, so repeated requests with one schema share the automaton and every
 * mask computed so far.
 */
import { OptionError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { regexToDfa, RegexCompileError } from "./char-dfa.js";
import { CompiledConstraint } from "./constraint.js";
import { DfaMachine } from "./dfa-machine.js";
import { JsonMachine } from "./json-machine.js";
import type { ByteMachine } from "./machine.js";
import { Lru } from "./lru.js";
import { normalizeConstraint, type ConstraintSpec } from "./spec.js";
import { vocabIndex } from "./vocab-index.js";

/** Compiled constraints kept per tokenizer. */
export const CONSTRAINT_CACHE_SIZE = 64;

const caches = new WeakMap<Tokenizer, Lru<string, CompiledConstraint>>();

/** Compiles (or finds in the cache) a constraint for this tokenizer. Throws OptionError for bad specs. */
export function compileConstraint(spec: ConstraintSpec, tokenizer: Tokenizer, field = "constraint"): CompiledConstraint {
  const norm = normalizeConstraint(spec, field);
  let lru = caches.get(tokenizer);
  if (lru === undefined) {
    lru = new Lru(CONSTRAINT_CACHE_SIZE);
    caches.set(tokenizer, lru);
  }
  const hit = lru.get(norm.key);
  if (hit !== undefined) return hit;

  let machine: ByteMachine<unknown>;
  if (norm.target.kind === "json") {
    machine = new JsonMachine(norm.target.root) as ByteMachine<unknown>;
  } else {
    try {
      machine = new DfaMachine(regexToDfa(norm.target.source)) as ByteMachine<unknown>;
    } catch (e) {
      if (e instanceof RegexCompileError) throw new OptionError(field, e.message);
      throw e;
    }
  }
  const compiled = new CompiledConstraint(norm.spec, machine, vocabIndex(tokenizer));
  const first = compiled.mask(machine.initial);
  if (first.count === 0) {
    throw new OptionError(field, "no token of this model's vocabulary can start an output that satisfies the constraint", "the constraint needs characters the vocabulary cannot write");
  }
  lru.set(norm.key, compiled);
  return compiled;
}

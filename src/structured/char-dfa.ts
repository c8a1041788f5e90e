/**
 * JS-syntax regular expressions to a compact character DFA, through refa: parse ->
 * NFA -> DFA (subset construction) -> minimize. The result is flat typed arrays, so
 * the per-byte step of the mask walk is a table lookup, not a Map walk.
 *
 * Characters are Unicode code points (the pattern is parsed with the `u` flag when it
 * allows, else as UTF-16 code units, which agree with code points on the BMP).
 */
import { DFA, JS, NFA, TooManyNodesError } from "refa";

/** Above this many states a constraint is refused: masks are cached per state. */
export const MAX_DFA_STATES = 20_000;

export interface CharDfa {
  readonly numStates: number;
  readonly start: number;
  /** 1 where a state accepts. */
  readonly accepting: Uint8Array;
  /** [state * 128 + c] -> next state, -1 = reject. JSON is mostly ASCII, so it gets a dense table. */
  readonly ascii: Int32Array;
  /** Non-ASCII transitions, by state (CSR): ranges [lo[i], hi[i]] -> to[i], sorted by lo. */
  readonly rangeStart: Int32Array;
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly to: Int32Array;
}

/** A pattern refa cannot parse or turn into an automaton; `message` says why. */
export class RegexCompileError extends Error {}

/** Parses a JS regex source (no delimiters, no flags) into refa's AST. */
export function parseRegex(source: string): JS.ParseResult {
  let first: unknown;
  for (const flags of ["u", ""]) {
    try {
      return JS.Parser.fromLiteral({ source, flags }).parse({ backreferences: "throw", maxBackreferenceWords: 0 });
    } catch (e) {
      first ??= e;
    }
  }
  throw new RegexCompileError(`invalid regular expression /${source}/: ${(first as Error).message}`);
}

/** The minimal DFA of a refa-parsed regex, matched against the whole text. */
export function dfaOfRegex(source: string): DFA {
  const { expression, maxCharacter } = parseRegex(source);
  try {
    const nfa = NFA.fromRegex(expression, { maxCharacter }, { assertions: "throw", unknowns: "throw" }, new NFA.LimitedNodeFactory(MAX_DFA_STATES * 4));
    const dfa = DFA.fromFA(nfa, new DFA.LimitedNodeFactory(MAX_DFA_STATES * 4));
    dfa.minimize();
    return dfa;
  } catch (e) {
    if (e instanceof TooManyNodesError) throw new RegexCompileError(`the pattern needs more than ${MAX_DFA_STATES} automaton states; simplify it (fewer alternatives, smaller repetition counts)`);
    const msg = (e as Error).message;
    if (/assertion/i.test(msg)) throw new RegexCompileError("assertions (^ and $ inside the pattern, \\b, lookahead, lookbehind) are not supported; the whole output is matched, so leave them out");
    if (/unknown|backreference/i.test(msg)) throw new RegexCompileError("backreferences are not supported (they are not regular)");
    throw new RegexCompileError(`cannot build an automaton for /${source}/: ${msg}`);
  }
}

/** Compiles a regex (full-match semantics) into a CharDfa. */
export function regexToDfa(source: string): CharDfa {
  return compactDfa(dfaOfRegex(source));
}

/** Flattens a refa DFA, dropping states from which no accepting state can be reached. */
export function compactDfa(dfa: DFA): CharDfa {
  type Node = DFA.ReadonlyNode;
  const nodes = [...dfa.nodes()];
  const live = coReachable(nodes, dfa.finals);
  if (!live.has(dfa.initial)) throw new RegexCompileError("the pattern matches nothing");
  const kept = nodes.filter((n) => live.has(n));
  if (kept.length > MAX_DFA_STATES) throw new RegexCompileError(`the pattern needs ${kept.length} automaton states (at most ${MAX_DFA_STATES}); simplify it`);
  const id = new Map<Node, number>();
  id.set(dfa.initial, 0);
  for (const n of kept) if (!id.has(n)) id.set(n, id.size);

  const S = kept.length;
  const accepting = new Uint8Array(S);
  const ascii = new Int32Array(S * 128).fill(-1);
  const starts = new Int32Array(S + 1);
  const lo: number[] = [];
  const hi: number[] = [];
  const to: number[] = [];
  const order = [...id.keys()];
  for (let s = 0; s < S; s++) {
    const n = order[s];
    if (dfa.finals.has(n as DFA.Node)) accepting[s] = 1;
    starts[s] = lo.length;
    const wide: [number, number, number][] = [];
    for (const [range, target] of n.out) {
      const t = id.get(target);
      if (t === undefined) continue; // leads only to dead states
      for (let c = range.min; c <= Math.min(range.max, 127); c++) ascii[s * 128 + c] = t;
      if (range.max >= 128) wide.push([Math.max(range.min, 128), range.max, t]);
    }
    wide.sort((a, b) => a[0] - b[0]);
    for (const [a, b, t] of wide) {
      lo.push(a);
      hi.push(b);
      to.push(t);
    }
  }
  starts[S] = lo.length;
  return { numStates: S, start: 0, accepting, ascii, rangeStart: starts, lo: Int32Array.from(lo), hi: Int32Array.from(hi), to: Int32Array.from(to) };
}

/** States from which some final state is reachable (reverse BFS). */
function coReachable(nodes: DFA.ReadonlyNode[], finals: ReadonlySet<DFA.ReadonlyNode>): Set<DFA.ReadonlyNode> {
  const preds = new Map<DFA.ReadonlyNode, DFA.ReadonlyNode[]>();
  for (const n of nodes) {
    for (const [, t] of n.out) {
      const p = preds.get(t);
      if (p) p.push(n);
      else preds.set(t, [n]);
    }
  }
  const live = new Set<DFA.ReadonlyNode>(finals);
  const todo = [...finals];
  while (todo.length > 0) {
    for (const p of preds.get(todo.pop()!) ?? []) {
      if (!live.has(p)) {
        live.add(p);
        todo.push(p);
      }
    }
  }
  return live;
}

/** Next state on code point c, or -1. */
export function dfaStep(d: CharDfa, s: number, c: number): number {
  if (c < 128) return d.ascii[s * 128 + c];
  let a = d.rangeStart[s];
  let b = d.rangeStart[s + 1] - 1;
  while (a <= b) {
    const m = (a + b) >> 1;
    if (c < d.lo[m]) b = m - 1;
    else if (c > d.hi[m]) a = m + 1;
    else return d.to[m];
  }
  return -1;
}

/** Whether some code point in [from, to] has a transition out of state s. */
export function dfaHasRange(d: CharDfa, s: number, from: number, to: number): boolean {
  if (from < 128) {
    for (let c = from; c <= Math.min(to, 127); c++) if (d.ascii[s * 128 + c] >= 0) return true;
    if (to < 128) return false;
    from = 128;
  }
  for (let i = d.rangeStart[s]; i < d.rangeStart[s + 1]; i++) if (d.lo[i] <= to && d.hi[i] >= from) return true;
  return false;
}

/** Whether the DFA accepts the whole string (for tests and debugging). */
export function dfaMatches(d: CharDfa, text: string): boolean {
  let s = d.start;
  for (const ch of text) {
    s = dfaStep(d, s, ch.codePointAt(0)!);
    if (s < 0) return false;
  }
  return d.accepting[s] === 1;
}

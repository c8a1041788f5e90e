/**
 * Stop conditions. Stop strings are matched over streamed text: the checker holds
 * back any tail that could still grow into a stop string, so a client never sees
 * part of a stop string that later matches. Stop tokens are a per-token check.
 */
import type { SamplingParams } from "./sampling-params.js";

export interface StopResult {
  /** Text that is now safe to emit (never contains a stop string or the text after it). */
  text: string;
  /** A stop string completed; generation should end. */
  stopped: boolean;
  /** Which stop string matched. */
  stop?: string;
}

export class StopChecker {
  private readonly stops: readonly string[];
  private readonly maxLen: number;
  /** Text received but not emitted: it ends with what could be the start of a stop string. */
  private pending = "";
  private done = false;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
    this.maxLen = this.stops.reduce((n, s) => Math.max(n, s.length), 0);
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Feeds the next text delta. After a stop, further deltas are ignored. */
  push(delta: string): StopResult {
    if (this.done) return { text: "", stopped: true };
    if (this.maxLen === 0) return { text: delta, stopped: false };
    const buf = this.pending + delta;

    // The match that completes first wins, as if the text had arrived one character
    // at a time, so the outcome does not depend on how the text was chunked; among
    // matches completing at the same point the earliest start (longest) wins.
    let bestStart = -1;
    let bestEnd = Infinity;
    let best = "";
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i < 0) continue;
      const e = i + s.length;
      if (e < bestEnd || (e === bestEnd && i < bestStart)) {
        bestStart = i;
        bestEnd = e;
        best = s;
      }
    }
    if (bestStart >= 0) {
      this.done = true;
      this.pending = "";
      return { text: buf.slice(0, bestStart), stopped: true, stop: best };
    }

    const hold = this.heldTail(buf);
    this.pending = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** Generation ended for another reason (EOS, length): release the held-back text. */
  flush(): string {
    const t = this.pending;
    this.pending = "";
    return t;
  }

  /** Length of the longest suffix of buf that is a proper prefix of some stop string. */
  private heldTail(buf: string): number {
    for (let k = Math.min(this.maxLen - 1, buf.length); k > 0; k--) {
      const tail = buf.slice(buf.length - k);
      if (this.stops.some((s) => s.length > k && s.startsWith(tail))) return k;
    }
    return 0;
  }
}

/** Whether `id` ends generation: a requested stop token, or EOS unless ignoreEos. */
export function isStopToken(
  id: number,
  params: Pick<SamplingParams, "stopTokenIds" | "ignoreEos">,
  eosIds: readonly number[] | ReadonlySet<number>,
): boolean {
  if (params.stopTokenIds.includes(id)) return true;
  if (params.ignoreEos) return false;
  return Array.isArray(eosIds) ? eosIds.includes(id) : (eosIds as ReadonlySet<number>).has(id);
}

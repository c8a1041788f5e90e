/**
 * The shared memory of one group of ranks (threads of one process): a control block of
 * Int32 words, a float data region (collective scratch, pipeline channels, logits) and a
 * step region (the StepBatch the main thread hands out); steps in flight at once (up to
 * `depth`) each have their own step area, logits area and done word. Every wait spins briefly, then
 * sleeps in Atomics.wait, and gives up when any rank has failed, so no rank blocks on a
 * peer that is gone.
 */

/** Control words. */
export const W = {
  /** Commands posted by the main thread (each a step, in order; ranks run them one after another). */
  CMD_SEQ: 0,
  /** CMD_QUIT once the ranks are to stop (checked before each step). */
  CMD: 1,
  /** 0, or 1 + the rank that failed first (world size + 1: the group itself). */
  FAILED: 3,
  /** Ranks loaded and waiting for commands. */
  READY: 4,
  /** 1 + bytes of the failure message; 0 until the failing thread has written it. */
  ERR_LEN: 5,
  /** Ranks done with the step in slot k: DONE + k (k < MAX_PIPELINE_DEPTH). */
  DONE: 6,
  /** Barrier words of stage s: BARRIER + 2s (count), + 1 (generation). */
  BARRIER: 16,
} as const;
/** Most steps in flight at once (each has its own step area, logits area and done word). */
export const MAX_PIPELINE_DEPTH = 8;
export const CMD_STEP = 1;
export const CMD_QUIT = 2;

/** Byte offset of the failure message in the control buffer, and its room. */
export const ERR_AT = 8192;
export const ERR_BYTES = 4096;
/** Byte offset of each rank's statistics (STAT_FIELDS float64 per rank). */
export const STATS_AT = ERR_AT + ERR_BYTES;
/**
 * Microseconds in all-reduce, all-gather, send, recv; collective calls; steps; microseconds
 * in steps; KV bytes; microseconds busy (in steps, outside collectives and channel waits).
 */
export const STAT_FIELDS = 9;

export interface WorldLayout {
  tp: number;
  pp: number;
  /** Floats of the largest collective payload (per rank slot) and pipeline message. */
  maxCollective: number;
  maxMessage: number;
  /** Floats of the logits area [maxLogitRows, vocab]. */
  logitFloats: number;
  /** Int32 words of one step area. */
  stepWords: number;
  /** Steps in flight at once (one step area and logits area each); default 1. */
  depth?: number;
}

/** Where things are: word indices in ctrl, float offsets in data. */
export class WorldMap {
  readonly ctrlWords: number;
  readonly dataFloats: number;
  readonly logitsAt: number;

  constructor(readonly l: WorldLayout) {
    this.ctrlWords = ERR_AT / 4;
    const world = l.tp * l.pp;
    if (this.channelWord(world) + 4 > this.ctrlWords) throw new Error(`parallel: ${world} ranks need a larger control block`);
    if (this.depth > MAX_PIPELINE_DEPTH) throw new Error(`parallel: at most ${MAX_PIPELINE_DEPTH} steps in flight, not ${this.depth}`);
    this.logitsAt = l.pp * this.groupFloats + world * 2 * l.maxMessage;
    this.dataFloats = this.logitsAt + this.depth * l.logitFloats;
  }

  get depth(): number {
    return this.l.depth ?? 1;
  }

  /** Float offset of step slot k's logits. */
  logitsOf(k: number): number {
    return this.logitsAt + k * this.l.logitFloats;
  }

  barrierWord(stage: number): number {
    return W.BARRIER + 2 * stage;
  }

  /** Channel from global rank `sender` to its next stage: [sent, received, count of slot 0, count of slot 1]. */
  channelWord(sender: number): number {
    return W.BARRIER + 2 * this.l.pp + 4 * sender;
  }

  /** Per stage: tp partial slots + one result area. */
  get groupFloats(): number {
    return (this.l.tp + 1) * this.l.maxCollective;
  }

  slotAt(stage: number, tpRank: number): number {
    return stage * this.groupFloats + tpRank * this.l.maxCollective;
  }

  resultAt(stage: number): number {
    return stage * this.groupFloats + this.l.tp * this.l.maxCollective;
  }

  /** Slot k (0, 1) of the channel out of global rank `sender`. */
  messageAt(sender: number, k: number): number {
    return this.l.pp * this.groupFloats + (2 * sender + k) * this.l.maxMessage;
  }
}

/** The buffers, as shared between threads (structured-clone safe). */
export interface WorldBuffers {
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  step: SharedArrayBuffer;
}

export function allocWorld(map: WorldMap): WorldBuffers {
  return {
    ctrl: new SharedArrayBuffer(STATS_AT + map.l.tp * map.l.pp * STAT_FIELDS * 8),
    data: new SharedArrayBuffer(map.dataFloats * 4),
    step: new SharedArrayBuffer(map.depth * map.l.stepWords * 4),
  };
}

/** Thrown inside a rank when another rank failed: it stops the step without being the cause. */
export class PeerFailed extends Error {}

/** Records the first failure and wakes every waiter. Safe from any thread. */
export function failWorld(ctrl: Int32Array, who: number, message: string): void {
  if (Atomics.compareExchange(ctrl, W.FAILED, 0, who + 1) !== 0) return;
  const bytes = new TextEncoder().encode(message).subarray(0, ERR_BYTES);
  new Uint8Array(ctrl.buffer, ERR_AT, ERR_BYTES).set(bytes);
  Atomics.store(ctrl, W.ERR_LEN, bytes.length + 1); // + 1: 0 means "not written yet"
  for (let i = 0; i < ERR_AT / 4; i++) Atomics.notify(ctrl, i);
}

export function failureOf(ctrl: Int32Array): { who: number; message: string } | null {
  const f = Atomics.load(ctrl, W.FAILED);
  if (f === 0) return null;
  // the failing thread claims FAILED first, then writes its message: give it that moment
  for (let k = 0; k < 100 && Atomics.load(ctrl, W.ERR_LEN) === 0; k++) Atomics.wait(ctrl, W.ERR_LEN, 0, 10);
  const len = Math.max(0, Atomics.load(ctrl, W.ERR_LEN) - 1);
  return { who: f - 1, message: new TextDecoder().decode(new Uint8Array(ctrl.buffer, ERR_AT, len).slice()) };
}

/** Spin iterations before a waiter sleeps (2 cores shared by several ranks: keep it short). */
export const DEFAULT_SPIN = 2000;
/** A sleeping waiter rechecks the failure word this often (a backstop: failures notify). */
const SLEEP_MS = 200;

/** Waits until ctrl[i] !== v; throws PeerFailed when a rank failed meanwhile. */
export function waitChange(ctrl: Int32Array, i: number, v: number, spin = DEFAULT_SPIN): void {
  for (let k = 0; k < spin; k++) if (Atomics.load(ctrl, i) !== v) return;
  while (Atomics.load(ctrl, i) === v) {
    if (Atomics.load(ctrl, W.FAILED) !== 0) throw new PeerFailed("a peer rank failed");
    Atomics.wait(ctrl, i, v, SLEEP_MS);
  }
}

/** Sense-reversing barrier of `n` threads on words [at, at + 1]. */
export function barrier(ctrl: Int32Array, at: number, n: number, spin = DEFAULT_SPIN): void {
  if (n === 1) return;
  const gen = Atomics.load(ctrl, at + 1);
  if (Atomics.add(ctrl, at, 1) === n - 1) {
    Atomics.store(ctrl, at, 0);
    Atomics.add(ctrl, at + 1, 1);
    Atomics.notify(ctrl, at + 1);
    return;
  }
  waitChange(ctrl, at + 1, gen, spin);
}

/**
 * A small seedable PRNG for sampling: xoshiro128** (Blackman & Vigna), 32-bit ops
 * only so V8 keeps everything in int32 registers. Written from the published
 * algorithm description. Not cryptographic; it only has to be fast, well mixed
 * and reproducible across platforms and Node versions.
 */
import { randomFillSync } from "node:crypto";

/** A 32-bit avalanche mix (bijective), used to spread seeds over the whole state. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

const TWO_POW_32 = 4294967296;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * `seed`: any safe integer; the same (seed, stream) always yields the same numbers.
   * `stream`: picks an independent sequence for the same seed (e.g. the i-th of n
   * completions of one request). Without a seed the state comes from the OS.
   */
  constructor(seed?: number, stream = 0) {
    if (seed === undefined) {
      const s = randomFillSync(new Uint32Array(4));
      [this.s0, this.s1, this.s2, this.s3] = [s[0], s[1], s[2], s[3]];
    } else {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
      if (!Number.isSafeInteger(stream)) throw new RangeError(`Rng stream must be a safe integer, got ${stream}`);
      // Chain the seed's low word, high word and the stream through the bijective mix,
      // so distinct 32-bit seeds (for a given stream) give distinct starting states.
      const lo = seed >>> 0;
      const hi = Math.floor(seed / TWO_POW_32) >>> 0;
      let x = mix32(mix32(mix32(lo) ^ hi) ^ (stream >>> 0));
      const words: number[] = [];
      for (let i = 0; i < 4; i++) {
        x = mix32((x + 0x9e3779b9) >>> 0);
        words.push(x);
      }
      [this.s0, this.s1, this.s2, this.s3] = words;
    }
    // The all-zero state is the one fixed point of xoshiro; never start there.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The four state words, to save a generator and resume it later with `Rng.fromState`. */
  getState(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  static fromState(state: readonly [number, number, number, number]): Rng {
    const r = new Rng(0);
    [r.s0, r.s1, r.s2, r.s3] = state.map((w) => w >>> 0);
    if ((r.s0 | r.s1 | r.s2 | r.s3) === 0) throw new RangeError("Rng state must not be all zero");
    return r;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform float in [0, 1) with 53 random bits (two draws), so tiny probabilities are still reachable. */
  nextFloat(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

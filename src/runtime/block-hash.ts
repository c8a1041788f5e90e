/**
 * Chained hashes of full KV blocks: a block's key covers its own tokens and, through
 * the previous block's key, every token before it. Two independent 32-bit lanes
 * (FNV-1a-style mixing with different offsets and a murmur finalizer) make a 64-bit key.
 */
export type BlockKey = string;

function mix(h: number, v: number): number {
  h = Math.imul(h ^ (v & 0xffff), 0x01000193);
  return Math.imul(h ^ (v >>> 16), 0x01000193);
}

function finalize(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Key of the block holding tokens[start, start + blockSize), chained to `prev` (null for the first block). */
export function blockKey(prev: BlockKey | null, tokens: readonly number[], start: number, blockSize: number): BlockKey {
  let a = 0x811c9dc5;
  let b = 0x2f1b9a07;
  if (prev !== null) {
    for (let i = 0; i < prev.length; i++) {
      a = mix(a, prev.charCodeAt(i));
      b = mix(b ^ 0x5bd1e995, prev.charCodeAt(i));
    }
  }
  for (let i = start; i < start + blockSize; i++) {
    a = mix(a, tokens[i]);
    b = mix(b ^ 0x27d4eb2f, tokens[i]);
  }
  return finalize(a).toString(36) + "." + finalize(b).toString(36);
}

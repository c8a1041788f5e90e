/** Shared helpers of the CPU backend tests: seeded random data and closeness checks. */
import assert from "node:assert/strict";

/** Deterministic uniform values in [-scale, scale) (mulberry32). */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** Asserts |got - want| <= tol * (1 + |want|) everywhere; reports the worst element. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: element ${at} is ${got[at]}, want ${want[at]} (relative error ${worst})`);
}

/**
 * Checks a packed decode matmul out [T, N] against the reference within its rounding bound:
 * each activation row rounded to int16 with one scale per token (max|x_t| / 32767), or, with
 * `int8Chunk`, to int8 with one scale per that many columns (max of the chunk / 127); a value
 * moves by half a step, so out[t, n] by half a step times |w| summed over its columns; f32 sums
 * add ~2e-6 relative. wf: the dequantized weights [N, K].
 */
export function assertWithinDecodeBound(got: Float32Array, want: Float32Array, x: Float32Array, wf: Float32Array, T: number, N: number, K: number, what: string, int8Chunk?: number): void {
  const chunk = int8Chunk ?? K;
  for (let t = 0; t < T; t++) {
    let amax = 0;
    for (let i = 0; i < K; i++) amax = Math.max(amax, Math.abs(x[t * K + i]));
    for (let n = 0; n < N; n++) {
      let l1 = 0;
      let chunked = 0;
      for (let c = 0; c < K; c += chunk) {
        let cmax = 0;
        let cl1 = 0;
        for (let i = c; i < Math.min(K, c + chunk); i++) ((cmax = Math.max(cmax, Math.abs(x[t * K + i]))), (cl1 += Math.abs(wf[n * K + i])));
        chunked += (cmax / 127) * 0.5 * cl1;
        l1 += cl1;
      }
      const bound = (int8Chunk ? chunked : (amax / 32767) * 0.5 * l1) + amax * 2e-6 * l1 + 1e-6;
      const i = t * N + n;
      const err = Math.abs(got[i] - want[i]);
      if (!(err <= bound)) assert.fail(`${what}: out[${t}, ${n}] = ${got[i]}, want ${want[i]} (error ${err} > bound ${bound})`);
    }
  }
}

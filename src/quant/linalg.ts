/** The dense float64 linear algebra GPTQ needs, on square row-major [n, n] matrices. */

/** Lower-triangular L with L L^T = a (a symmetric positive definite), or null where a is not. */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  const L = new Float64Array(n * n); // [n, n] lower
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      if (i === j) {
        if (!(s > 0)) return null;
        L[i * n + i] = Math.sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j];
      }
    }
  }
  return L;
}

/** The inverse of a lower-triangular L (lower-triangular too), by forward substitution. */
export function invertLower(L: Float64Array, n: number): Float64Array {
  const X = new Float64Array(n * n); // [n, n] lower
  for (let j = 0; j < n; j++) {
    X[j * n + j] = 1 / L[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= L[i * n + k] * X[k * n + j];
      X[i * n + j] = s / L[i * n + i];
    }
  }
  return X;
}

/** (L L^T)^-1 = L^-T L^-1 from the Cholesky factor L. */
export function inverseFromCholesky(L: Float64Array, n: number): Float64Array {
  const X = invertLower(L, n);
  const out = new Float64Array(n * n); // [n, n] symmetric
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += X[k * n + i] * X[k * n + j]; // X lower: rows k >= max(i, j)
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * GPTQ's layer Hessian H = 2 X^T X / N of a linear layer's input X [N, K] (N rows over
 * every calibration window), accumulated window by window in float64.
 */
export class HessianAccumulator {
  /** [K, K]: sum of x x^T over the rows seen, lower triangle only until hessian(). */
  private readonly gram: Float64Array;
  private rows = 0;

  constructor(readonly cols: number) {
    this.gram = new Float64Array(cols * cols);
  }

  /** Adds the rows of x [rows, cols]. */
  add(x: Float32Array): void {
    const K = this.cols;
    if (x.length % K !== 0) throw new Error(`hessian: ${x.length} values is not a whole number of rows of ${K}`);
    const G = this.gram;
    for (let at = 0; at < x.length; at += K) {
      for (let i = 0; i < K; i++) {
        const xi = x[at + i];
        if (xi === 0) continue;
        const row = i * K;
        for (let j = 0; j <= i; j++) G[row + j] += xi * x[at + j];
      }
    }
    this.rows += x.length / K;
  }

  get samples(): number {
    return this.rows;
  }

  /** 2 X^T X / N, symmetric [K, K]. */
  hessian(): Float64Array {
    const K = this.cols;
    const f = this.rows ? 2 / this.rows : 0;
    const H = new Float64Array(K * K);
    for (let i = 0; i < K; i++) {
      for (let j = 0; j <= i; j++) {
        const v = this.gram[i * K + j] * f;
        H[i * K + j] = v;
        H[j * K + i] = v;
      }
    }
    return H;
  }
}

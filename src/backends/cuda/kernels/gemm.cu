// Linear layers: out [M, N] = x [M, K] @ W [N, K]^T (+ bias [N]), f32 accumulation.
// Semantics: matmul in src/backends/reference/ops.ts.
//   gemv     M <= 8 (decode): one warp per output row streams W with 16-byte loads; the
//            bandwidth-bound case, and the one weight-only int8/int4/fp8 exists for.
//   gemv4    the same with four warps splitting each row's K (long rows, few of them);
//            which of the two (or cuBLASLt) runs each shape is timed at bind (tactics.ts).
//   gemm_tc  any M, bf16/f16 activations: 64x64 tiles on tensor cores, W dequantized
//            into shared memory (the fallback where cuBLASLt is absent or W is int8/int4).
//   gemm_f32 any M, float activations and float / int8 / int4 weights: plain FMA tiles
//            (exact-ish engines, the stories260K goldens, fp32 engines built with --quant).
// The output type OUT is the activation type, or float for the logits.
#include "weights.cuh"

constexpr int GEMV_MAXM = 8;
constexpr int GEMV_PREFETCH = 16;  // 16-byte steps of a lane prefetched before the wait (8 KB of a one-warp row)

// grid (ceil(N / (8 / WPR))), block 256 = 8 warps; WPR warps share one output row, each
// taking every WPR-th 16-byte column chunk (split K: more loads in flight for long rows
// and few rows), summed through shared memory. WPR = 1: warp w -> row 8 * blockIdx.x + w.
// Needs K a multiple of W::VEC and 16-byte aligned rows (the host checks).
template <typename T, typename W, typename OUT, int WPR>
__device__ void gemv_split(OUT* out, const T* x, WeightRef wr, const float* bias, int M, int N, int K) {
  constexpr int ROWS = 8 / WPR;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n = blockIdx.x * ROWS + warp / WPR, part = warp % WPR;
  if (n < N) {  // this lane's first weight bytes into L2 while the previous kernel finishes (weights are constant)
    const char* row = (const char*)wr.w + (size_t)n * K * 16 / W::VEC;  // 16 / VEC bytes a value (int4: half)
    const size_t bytes = (size_t)K * 16 / W::VEC;
#pragma unroll
    for (int i = 0; i < GEMV_PREFETCH; i++) {
      const size_t at = (size_t)(part * 32 + lane) * 16 + (size_t)i * WPR * 512;
      if (at < bytes && lane % 8 == 0) prefetch_l2(row + at);  // one lane per 128-byte line
    }
  }
  pdl_wait(), pdl_trigger();
  float acc[GEMV_MAXM];
#pragma unroll
  for (int m = 0; m < GEMV_MAXM; m++) acc[m] = 0.f;
  if (n < N) {
    // several 16-byte weight loads in flight per lane: decode is bound by how many bytes
    // are on their way from HBM at once
#pragma unroll 4
    for (int k = (part * 32 + lane) * W::VEC; k < K; k += WPR * 32 * W::VEC) {
      float w[W::VEC];
      W::vec(wr, K, n, k, w);
#pragma unroll
      for (int m = 0; m < GEMV_MAXM; m++) {
        if (m >= M) break;
        const T* xr = x + (size_t)m * K + k;  // x is small and shared by every warp: L1 hits
        float a = 0.f;
        if constexpr (W::VEC % 8 == 0) {
#pragma unroll
          for (int e0 = 0; e0 < W::VEC; e0 += 8) {
            float xv[8];
            load8(xr + e0, 1.f, xv);
#pragma unroll
            for (int e = 0; e < 8; e++) a += xv[e] * w[e0 + e];
          }
        } else {  // f32 weights: 4 per load; read x one by one rather than past the row
#pragma unroll
          for (int e = 0; e < W::VEC; e++) a += to_f(xr[e]) * w[e];
        }
        acc[m] += a;
      }
    }
  }
#pragma unroll
  for (int m = 0; m < GEMV_MAXM; m++) acc[m] = m < M ? warp_sum(acc[m]) : 0.f;
  if constexpr (WPR > 1) {
    __shared__ float part_sums[8][GEMV_MAXM];
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < GEMV_MAXM; m++) part_sums[warp][m] = acc[m];
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int m = 0; m < GEMV_MAXM; m++)
#pragma unroll
      for (int p = 1; p < WPR; p++) acc[m] += part_sums[warp + p][m];
  }
  if (n >= N || lane != 0) return;
#pragma unroll
  for (int m = 0; m < GEMV_MAXM; m++) {
    if (m >= M) break;
    out[(size_t)m * N + n] = from_f<OUT>(bias ? acc[m] + bias[n] : acc[m]);
  }
}

template <typename T, typename W, typename OUT>
__device__ void gemv(OUT* out, const T* x, WeightRef wr, const float* bias, int M, int N, int K) {
  gemv_split<T, W, OUT, 1>(out, x, wr, bias, M, N, K);
}

template <typename T, typename W, typename OUT>
__device__ void gemv4(OUT* out, const T* x, WeightRef wr, const float* bias, int M, int N, int K) {
  gemv_split<T, W, OUT, 4>(out, x, wr, bias, M, N, K);
}

// grid (ceil(N / 64), ceil(M / 64)), block 128 = 4 warps in 2 x 2, each a 32 x 32 tile
// of 2 x 4 mma tiles. K tiles of 32 staged in shared memory; any M, N, K.
template <typename T, typename W, typename OUT>
__device__ void gemm_tc(OUT* out, const T* x, WeightRef wr, const float* bias, int M, int N, int K) {
  constexpr int BM = 64, BN = 64, BK = 32, P = BK + 8;  // +8: rows fall on distinct banks
  pdl_wait(), pdl_trigger();
  __shared__ __align__(16) T As[BM][P];
  __shared__ __align__(16) T Bs[BN][P];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const int wm = warp >> 1, wn = warp & 1;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = threadIdx.x; i < BM * BK; i += blockDim.x) {
      const int r = i / BK, c = i % BK, m = m0 + r, n = n0 + r, k = k0 + c;
      As[r][c] = (m < M && k < K) ? x[(size_t)m * K + k] : from_f<T>(0.f);
      Bs[r][c] = from_f<T>((n < N && k < K) ? W::at(wr, K, n, k) : 0.f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      u32 a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; i++) {
        const int r = wm * 32 + i * 16 + g;
        a[i][0] = *(const u32*)&As[r][kk + 2 * tq];
        a[i][1] = *(const u32*)&As[r + 8][kk + 2 * tq];
        a[i][2] = *(const u32*)&As[r][kk + 2 * tq + 8];
        a[i][3] = *(const u32*)&As[r + 8][kk + 2 * tq + 8];
      }
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int c = wn * 32 + j * 8 + g;
        b[j][0] = *(const u32*)&Bs[c][kk + 2 * tq];
        b[j][1] = *(const u32*)&Bs[c][kk + 2 * tq + 8];
      }
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) mma_16816<T>(acc[i][j], a[i], b[j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int m = m0 + wm * 32 + i * 16 + g + (e >= 2 ? 8 : 0), n = n0 + wn * 32 + j * 8 + 2 * tq + (e & 1);
        if (m < M && n < N) out[(size_t)m * N + n] = from_f<OUT>(bias ? acc[i][j][e] + bias[n] : acc[i][j][e]);
      }
}

// grid (ceil(N / 64), ceil(M / 64)), block 256 = 16 x 16 threads, each 4 x 4 outputs.
template <typename T, typename W, typename OUT>
__device__ void gemm_f32(OUT* out, const T* x, WeightRef wr, const float* bias, int M, int N, int K) {
  constexpr int BM = 64, BN = 64, BK = 16;
  pdl_wait(), pdl_trigger();
  __shared__ float As[BK][BM + 1];  // transposed tiles: [k][row]
  __shared__ float Bs[BK][BN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = threadIdx.x; i < BM * BK; i += blockDim.x) {
      const int r = i / BK, c = i % BK, m = m0 + r, n = n0 + r, k = k0 + c;
      As[c][r] = (m < M && k < K) ? to_f(x[(size_t)m * K + k]) : 0.f;
      Bs[c][r] = (n < N && k < K) ? W::at(wr, K, n, k) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i], b[i] = Bs[kk][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < M && n < N) out[(size_t)m * N + n] = from_f<OUT>(bias ? acc[i][j] + bias[n] : acc[i][j]);
    }
}

#define LINEAR_ARGS(T) const T *x, const void *w, const float *scale, int group, const float *bias, int M, int N, int K
#define LINEAR(KIND, NAME, T, W, OUT)                                                                  \
  extern "C" __global__ void NAME(OUT* out, LINEAR_ARGS(T)) {                                             \
    KIND<T, W, OUT>(out, x, WeightRef{w, scale, group, nullptr}, bias, M, N, K);                       \
  }                                                                                                    \
  LLMRT_EXPORT(NAME)
// int4 with zero points: the same kernels with one more argument, last, so that every
// other kernel keeps its signature
#define LINEAR_Z(KIND, NAME, T, W, OUT)                                                                \
  extern "C" __global__ void NAME(OUT* out, LINEAR_ARGS(T), const unsigned char* zero) {                \
    KIND<T, W, OUT>(out, x, WeightRef{w, scale, group, zero}, bias, M, N, K);                          \
  }                                                                                                    \
  LLMRT_EXPORT(NAME)

// name: kind_<activation>_<weight>[_f32out]; weight i4z: int4 with zero points (WI4Z)
#define LINEAR_HALF_(L, S, T, WS, W)                   \
  L(gemv, gemv_##S##_##WS, T, W, T)                      \
  L(gemv, gemv_##S##_##WS##_f32out, T, W, float)         \
  L(gemv4, gemv4_##S##_##WS, T, W, T)                    \
  L(gemv4, gemv4_##S##_##WS##_f32out, T, W, float)       \
  L(gemm_tc, gemm_tc_##S##_##WS, T, W, T)                \
  L(gemm_tc, gemm_tc_##S##_##WS##_f32out, T, W, float)
#define LINEAR_HALF(S, T, WS, W) LINEAR_HALF_(LINEAR, S, T, WS, W)

LINEAR(gemv, gemv_f32_f32, float, WF32, float)
LINEAR(gemm_f32, gemm_f32_f32, float, WF32, float)
// f32 activations over int8 / int4 weights: fp32 engines built with --quant keep their
// packed weights on the device and compute as the reference does
LINEAR(gemv, gemv_f32_i8, float, WI8, float)
LINEAR(gemm_f32, gemm_f32_i8, float, WI8, float)
LINEAR(gemv, gemv_f32_i4, float, WI4, float)
LINEAR(gemm_f32, gemm_f32_i4, float, WI4, float)
LINEAR_Z(gemv, gemv_f32_i4z, float, WI4Z, float)
LINEAR_Z(gemm_f32, gemm_f32_i4z, float, WI4Z, float)
LINEAR_HALF(bf16, bf16, bf16, WBF16)
LINEAR_HALF(bf16, bf16, i8, WI8)
LINEAR_HALF(bf16, bf16, i4, WI4)
LINEAR_HALF_(LINEAR_Z, bf16, bf16, i4z, WI4Z)
LINEAR_HALF(bf16, bf16, fp8, WFP8)
LINEAR_HALF(f16, f16, f16, WF16)

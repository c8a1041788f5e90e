// Row and element kernels of the plain graph ops: embedding, add, mul, silu, the fused
// silu*mul over packed gate|up, slice_cols, gather_rows, and dtype conversion.
// Semantics: src/backends/reference/ops.ts and fused.ts.
#include "common.cuh"

// out [rows, H] = table [vocab, H] rows ids[r]. Ids were checked on the host; an id
// outside [0, vocab) (a padded graph row) reads row 0.
template <typename T>
__device__ void embedding(T* out, const T* table, const int* ids, int rows, int H, int vocab) {
  const int r = blockIdx.x;
  if (r >= rows) return;
  int id = ids[r];
  if (id < 0 || id >= vocab) id = 0;
  const T* src = table + (size_t)id * H;
  T* dst = out + (size_t)r * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = src[i];
}

// out = a + b, elementwise over n values
template <typename T>
__device__ void add(T* out, const T* a, const T* b, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

// out = a * b, elementwise
template <typename T>
__device__ void mul(T* out, const T* a, const T* b, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = from_f<T>(to_f(a[i]) * to_f(b[i]));
}

__device__ __forceinline__ float silu_f(float g) { return g / (1.f + expf(-g)); }

// out = silu(x) = x * sigmoid(x)
template <typename T>
__device__ void silu(T* out, const T* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = from_f<T>(silu_f(to_f(x[i])));
}

// out [rows, I] = silu(x[:, :I]) * x[:, I:]   x [rows, 2I] = gate|up
// Rows of whole 16-byte vectors go a vector per thread step (one load each of gate and up).
template <typename T>
__device__ void silu_mul(T* out, const T* x, int rows, int I) {
  const size_t n = (size_t)rows * I;
  constexpr int V = Vec16<T>::N;
  if (I % V == 0) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V; i < n; i += (size_t)gridDim.x * blockDim.x * V) {
      const size_t r = i / I, c = i % I;
      float g[V], u[V];
      load_vec(x + r * 2 * I + c, g);
      load_vec(x + r * 2 * I + I + c, u);
#pragma unroll
      for (int e = 0; e < V; e++) g[e] = to_f(from_f<T>(silu_f(g[e]))) * u[e];
      store_vec(out + i, g);
    }
    return;
  }
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t r = i / I, c = i % I;
    const float g = to_f(x[r * 2 * I + c]);
    // silu is rounded to the activation type first, where the plain graph stores it
    const float s = to_f(from_f<T>(silu_f(g)));
    out[i] = from_f<T>(s * to_f(x[r * 2 * I + I + c]));
  }
}

// out [rows, n] = x [rows, xcols] columns start .. start + n
template <typename T>
__device__ void slice_cols(T* out, const T* x, int rows, int xcols, int start, int n) {
  const size_t total = (size_t)rows * n;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    const size_t r = i / n, c = i % n;
    out[i] = x[r * xcols + start + c];
  }
}

// out [R, cols] = x [T, cols] rows idx[r]
template <typename T>
__device__ void gather_rows(T* out, const T* x, const int* idx, int R, int cols) {
  const int r = blockIdx.x;
  if (r >= R) return;
  const T* src = x + (size_t)idx[r] * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[(size_t)r * cols + i] = src[i];
}

// out [rows, n] += bias [n] (float32)
template <typename T>
__device__ void add_bias(T* out, const float* bias, int rows, int n) {
  const size_t total = (size_t)rows * n;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
    out[i] = from_f<T>(to_f(out[i]) + bias[i % n]);
}

// dst [n] = src [n] converted (round to nearest even); weights arrive as float32
template <typename T>
__device__ void from_f32(T* dst, const float* src, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = from_f<T>(src[i]);
}

// dst [n] float32 = src [n]
template <typename T>
__device__ void to_f32(float* dst, const T* src, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = to_f(src[i]);
}

#define ELEMENTWISE(S, T)                                                                                   \
  extern "C" __global__ void embedding_##S(T* out, const T* table, const int* ids, int rows, int H, int vocab) { \
    pdl_wait(), pdl_trigger(); \
    embedding<T>(out, table, ids, rows, H, vocab);                                                           \
  }                                                                                                          \
  extern "C" __global__ void add_##S(T* out, const T* a, const T* b, int n) { pdl_wait(), pdl_trigger(); add<T>(out, a, b, n); }       \
  extern "C" __global__ void mul_##S(T* out, const T* a, const T* b, int n) { pdl_wait(), pdl_trigger(); mul<T>(out, a, b, n); }       \
  extern "C" __global__ void silu_##S(T* out, const T* x, int n) { pdl_wait(), pdl_trigger(); silu<T>(out, x, n); }                    \
  extern "C" __global__ void silu_mul_##S(T* out, const T* x, int rows, int I) { pdl_wait(), pdl_trigger(); silu_mul<T>(out, x, rows, I); } \
  extern "C" __global__ void slice_cols_##S(T* out, const T* x, int rows, int xcols, int start, int n) {   \
    pdl_wait(), pdl_trigger();   \
    slice_cols<T>(out, x, rows, xcols, start, n);                                                            \
  }                                                                                                          \
  extern "C" __global__ void gather_rows_##S(T* out, const T* x, const int* idx, int R, int cols) {        \
    pdl_wait(), pdl_trigger();        \
    gather_rows<T>(out, x, idx, R, cols);                                                                    \
  }                                                                                                          \
  extern "C" __global__ void add_bias_##S(T* out, const float* bias, int rows, int n) {                    \
    pdl_wait(), pdl_trigger();                    \
    add_bias<T>(out, bias, rows, n);                                                                         \
  }                                                                                                          \
  extern "C" __global__ void from_f32_##S(T* dst, const float* src, u64 n) { pdl_wait(), pdl_trigger(); from_f32<T>(dst, src, n); }   \
  extern "C" __global__ void to_f32_##S(float* dst, const T* src, u64 n) { pdl_wait(), pdl_trigger(); to_f32<T>(dst, src, n); }       \
  LLMRT_EXPORT(embedding_##S)                                                                                \
  LLMRT_EXPORT(add_##S)                                                                                      \
  LLMRT_EXPORT(mul_##S)                                                                                      \
  LLMRT_EXPORT(silu_##S)                                                                                     \
  LLMRT_EXPORT(silu_mul_##S)                                                                                 \
  LLMRT_EXPORT(slice_cols_##S)                                                                               \
  LLMRT_EXPORT(gather_rows_##S)                                                                              \
  LLMRT_EXPORT(add_bias_##S)                                                                                 \
  LLMRT_EXPORT(from_f32_##S)                                                                                 \
  LLMRT_EXPORT(to_f32_##S)

ELEMENTWISE(f32, float)
ELEMENTWISE(bf16, bf16)
ELEMENTWISE(f16, f16)

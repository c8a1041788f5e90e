// RMSNorm and the fused residual add + RMSNorm.
// Semantics: rmsnorm and addRmsnorm in src/backends/reference/{ops,fused}.ts.
// One block per row (or per group); up to 256 threads; float32 sums.
// Rows whose length is a multiple of a 16-byte vector and fit NORM_CHUNKS vectors per
// thread are read once, with every load in flight before the first is used, and kept in
// registers (decode steps are one row: latency, not bandwidth); others take the plain loop.
#include "common.cuh"

constexpr int NORM_CHUNKS = 4;

template <typename T>
__device__ __forceinline__ bool norm_vectorized(int cols) {
  return cols % Vec16<T>::N == 0 && cols <= NORM_CHUNKS * Vec16<T>::N * (int)blockDim.x;
}

// The vector paths' end: o = w * v / sqrt(mean(v^2) + eps) for this thread's chunks of a
// row of `cols` held in v, given the thread's partial sum of squares `ss`.
template <typename T>
__device__ __forceinline__ void norm_store_chunks(T* o, float (&v)[NORM_CHUNKS][Vec16<T>::N], const float* w, float ss, int cols,
                                                  float eps, float* scratch) {
  constexpr int V = Vec16<T>::N;
  const int nc = cols / V;
  const float inv = 1.f / sqrtf(block_sum(ss, scratch) / cols + eps);
#pragma unroll
  for (int c = 0; c < NORM_CHUNKS; c++) {
    const int ci = threadIdx.x + c * blockDim.x;
    if (ci >= nc) continue;
#pragma unroll
    for (int e = 0; e < V; e++) v[c][e] = w[ci * V + e] * (inv * v[c][e]);
    store_vec(o + ci * V, v[c]);
  }
}

// out [groups, group] = weight [group] * x / sqrt(mean(x^2) + eps), for each group of
// `group` columns (group = cols normalizes whole rows, = headDim is Qwen3's q/k norm).
// Safe in place: each thread writes only the elements it read.
template <typename T>
__device__ void rmsnorm(T* out, const T* x, const float* w, int groups, int group, float eps) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  if (r >= groups) return;
  const T* xr = x + (size_t)r * group;
  T* o = out + (size_t)r * group;
  if (norm_vectorized<T>(group)) {
    constexpr int V = Vec16<T>::N;
    const int nc = group / V;
    float v[NORM_CHUNKS][V];
    float ss = 0.f;
#pragma unroll
    for (int c = 0; c < NORM_CHUNKS; c++) {
      const int ci = threadIdx.x + c * blockDim.x;
      if (ci < nc) load_vec(xr + ci * V, v[c]);
    }
#pragma unroll
    for (int c = 0; c < NORM_CHUNKS; c++)
      if (threadIdx.x + c * blockDim.x < nc)
#pragma unroll
        for (int e = 0; e < V; e++) ss += v[c][e] * v[c][e];
    norm_store_chunks(o, v, w, ss, group, eps, scratch);
    return;
  }
  float ss = 0.f;
  for (int i = threadIdx.x; i < group; i += blockDim.x) {
    const float v = to_f(xr[i]);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float inv = 1.f / sqrtf(ss / group + eps);
  for (int i = threadIdx.x; i < group; i += blockDim.x) o[i] = from_f<T>(w[i] * (inv * to_f(xr[i])));
}

// sum [rows, cols] = a + b (stored in T); out = rmsnorm(sum) of the stored values.
template <typename T>
__device__ void add_rmsnorm(T* out, T* sum, const T* a, const T* b, const float* w, int rows, int cols, float eps) {
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  if (r >= rows) return;
  const size_t base = (size_t)r * cols;
  if (norm_vectorized<T>(cols)) {
    constexpr int V = Vec16<T>::N;
    const int nc = cols / V;
    float v[NORM_CHUNKS][V];
    float ss = 0.f;
#pragma unroll
    for (int c = 0; c < NORM_CHUNKS; c++) {
      const int ci = threadIdx.x + c * blockDim.x;
      if (ci >= nc) continue;
      float bv[V];
      load_vec(a + base + ci * V, v[c]);
      load_vec(b + base + ci * V, bv);
#pragma unroll
      for (int e = 0; e < V; e++) v[c][e] = to_f(from_f<T>(v[c][e] + bv[e]));  // the sum as stored
    }
#pragma unroll
    for (int c = 0; c < NORM_CHUNKS; c++) {
      const int ci = threadIdx.x + c * blockDim.x;
      if (ci >= nc) continue;
      store_vec(sum + base + ci * V, v[c]);
#pragma unroll
      for (int e = 0; e < V; e++) ss += v[c][e] * v[c][e];
    }
    norm_store_chunks(out + base, v, w, ss, cols, eps, scratch);
    return;
  }
  float ss = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const T s = from_f<T>(to_f(a[base + i]) + to_f(b[base + i]));
    sum[base + i] = s;
    const float v = to_f(s);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float inv = 1.f / sqrtf(ss / cols + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[base + i] = from_f<T>(w[i] * (inv * to_f(sum[base + i])));
}

#define NORM(S, T)                                                                                                  \
  extern "C" __global__ void rmsnorm_##S(T* out, const T* x, const float* w, int groups, int group, float eps) {     \
    pdl_wait(), pdl_trigger();                                                                                       \
    rmsnorm<T>(out, x, w, groups, group, eps);                                                                       \
  }                                                                                                                  \
  extern "C" __global__ void add_rmsnorm_##S(T* out, T* sum, const T* a, const T* b, const float* w, int rows, int cols, \
                                             float eps) {                                                            \
    pdl_wait(), pdl_trigger();                                                                                       \
    add_rmsnorm<T>(out, sum, a, b, w, rows, cols, eps);                                                              \
  }                                                                                                                  \
  LLMRT_EXPORT(rmsnorm_##S)                                                                                          \
  LLMRT_EXPORT(add_rmsnorm_##S)

NORM(f32, float)
NORM(bf16, bf16)
NORM(f16, f16)

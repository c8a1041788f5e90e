// Weight preparation on the device: quantizing float32 weights to the weight-only
// formats of weights.cuh, filling random ("dummy") weights for benchmarks of big shapes
// without a checkpoint, and the per-tensor fp8 activation scale that cuBLASLt's FP8
// GEMM needs. FP8 conversions use the hardware instructions on sm_89+ (cuda_fp8.h picks
// them) and a software path below.
#include "common.cuh"

// int8 per output row: scale[n] = max|w[n, :]| / 127, q = round(w / scale).
// grid (N), block 256.
extern "C" __global__ void quant_i8_rows(signed char* q, float* scale, const float* w, int K) {
  __shared__ float scratch[32];
  const int n = blockIdx.x;
  const float* row = w + (size_t)n * K;
  float mx = 0.f;
  for (int k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, fabsf(row[k]));
  mx = block_max(mx, scratch);
  const float s = mx > 0.f ? mx / 127.f : 1.f;
  if (threadIdx.x == 0) scale[n] = s;
  for (int k = threadIdx.x; k < K; k += blockDim.x) q[(size_t)n * K + k] = (signed char)__float2int_rn(row[k] / s);
}
LLMRT_EXPORT(quant_i8_rows)

// int4 per row and group: scale = max|w| / 7 over the group, q = round(w / scale) + 8
// in [1, 15], two per byte (even k low). grid (N, K / group), block 32 (group <= 1024).
extern "C" __global__ void quant_i4_groups(unsigned char* q, float* scale, const float* w, int K, int group) {
  const int n = blockIdx.x, gi = blockIdx.y, lane = threadIdx.x;
  const float* src = w + (size_t)n * K + (size_t)gi * group;
  float mx = 0.f;
  for (int k = lane; k < group; k += 32) mx = fmaxf(mx, fabsf(src[k]));
  mx = warp_max(mx);
  const float s = mx > 0.f ? mx / 7.f : 1.f;
  if (lane == 0) scale[(size_t)n * (K / group) + gi] = s;
  for (int k2 = lane; k2 < group / 2; k2 += 32) {
    const int lo = min(7, max(-8, __float2int_rn(src[2 * k2] / s))) + 8;
    const int hi = min(7, max(-8, __float2int_rn(src[2 * k2 + 1] / s))) + 8;
    q[((size_t)n * K + (size_t)gi * group) / 2 + k2] = (unsigned char)(lo | (hi << 4));
  }
}
LLMRT_EXPORT(quant_i4_groups)

// int4 with a zero point per row and group (WI4Z), as src/quant/quantize.ts's asymmetric
// grid: [lo, hi] = [min(0, min w), max(0, max w)] over 15 steps, zero = round(-lo / scale)
// in [0, 15], q = round(w / scale) + zero in [0, 15]. grid (N, K / group), block 32.
extern "C" __global__ void quant_i4z_groups(unsigned char* q, float* scale, unsigned char* zero, const float* w, int K, int group) {
  const int n = blockIdx.x, gi = blockIdx.y, lane = threadIdx.x;
  const float* src = w + (size_t)n * K + (size_t)gi * group;
  float lo = 0.f, hi = 0.f;
  for (int k = lane; k < group; k += 32) lo = fminf(lo, src[k]), hi = fmaxf(hi, src[k]);
  lo = -warp_max(-lo);
  hi = warp_max(hi);
  const float s = hi > lo ? (hi - lo) / 15.f : 1.f;
  const int z = min(15, max(0, __float2int_rn(-lo / s)));
  const size_t g = (size_t)n * (K / group) + gi;
  if (lane == 0) scale[g] = s, zero[g] = (unsigned char)z;
  for (int k2 = lane; k2 < group / 2; k2 += 32) {
    const int a = min(15, max(0, __float2int_rn(src[2 * k2] / s) + z));
    const int b = min(15, max(0, __float2int_rn(src[2 * k2 + 1] / s) + z));
    q[((size_t)n * K + (size_t)gi * group) / 2 + k2] = (unsigned char)(a | (b << 4));
  }
}
LLMRT_EXPORT(quant_i4z_groups)

// fp8 e4m3 with one scale for the whole tensor (what cuBLASLt's FP8 GEMM takes), copied
// to every row's scale so the GEMV reads the same format as int8: s = amax / 448 (amax
// from absmax_f32 over the tensor). grid (N), block 256.
extern "C" __global__ void quant_fp8_tensor(fp8* q, float* scale, const float* w, const float* amax, int K) {
  const int n = blockIdx.x;
  const float s = amax[0] > 0.f ? amax[0] / 448.f : 1.f;
  if (threadIdx.x == 0) scale[n] = s;
  const float inv = 1.f / s;
  for (int k = threadIdx.x; k < K; k += blockDim.x) q[(size_t)n * K + k] = fp8(w[(size_t)n * K + k] * inv);
}
LLMRT_EXPORT(quant_fp8_tensor)

// amax[0] = max(amax[0], max |x|) over n values (amax zeroed by the host; floats >= 0
// order as their bit patterns, so an integer atomicMax works).
template <typename T>
__device__ void absmax(float* amax, const T* x, size_t n) {
  float mx = 0.f;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    mx = fmaxf(mx, fabsf(to_f(x[i])));
  mx = warp_max(mx);
  if ((threadIdx.x & 31) == 0) atomicMax((int*)amax, __float_as_int(mx));
}

// q = x / scale in fp8 with scale = amax / 448 (written to scale[0] for the GEMM).
template <typename T>
__device__ void quant_fp8_act(fp8* q, float* scale, const T* x, const float* amax, size_t n) {
  const float s = amax[0] > 0.f ? amax[0] / 448.f : 1.f;
  if (blockIdx.x == 0 && threadIdx.x == 0) scale[0] = s;
  const float inv = 1.f / s;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    q[i] = fp8(to_f(x[i]) * inv);
}

#define FP8ACT(S, T)                                                                                        \
  extern "C" __global__ void absmax_##S(float* amax, const T* x, u64 n) { absmax<T>(amax, x, n); }         \
  extern "C" __global__ void quant_fp8_act_##S(fp8* q, float* scale, const T* x, const float* amax, u64 n) { \
    quant_fp8_act<T>(q, scale, x, amax, n);                                                                 \
  }                                                                                                         \
  LLMRT_EXPORT(absmax_##S)                                                                                  \
  LLMRT_EXPORT(quant_fp8_act_##S)

FP8ACT(bf16, bf16)
FP8ACT(f16, f16)

extern "C" __global__ void absmax_f32(float* amax, const float* x, u64 n) { absmax<float>(amax, x, n); }
LLMRT_EXPORT(absmax_f32)

// A stateless hash of (seed, i) to [0, 1): every element independent, any launch shape.
__device__ __forceinline__ float hash01(u64 seed, u64 i) {
  u64 z = seed * 0x9e3779b97f4a7c15ull + i + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.f / 16777216.f);
}

// dst [n] = uniform in [lo, hi), dummy weights. grid-stride.
template <typename T>
__device__ void fill_uniform(T* dst, u64 n, u64 seed, float lo, float hi) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
    dst[i] = from_f<T>(lo + (hi - lo) * hash01(seed, i));
}

// dst [n] = random bytes (int8 / packed int4 dummy weights)
extern "C" __global__ void fill_bytes(unsigned char* dst, u64 n, u64 seed) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
    dst[i] = (unsigned char)(hash01(seed, i) * 256.f);
}
LLMRT_EXPORT(fill_bytes)

// dst [n] = v (i4z dummy zero points: a kernel, as the rest of the dummy fill, on the stream)
extern "C" __global__ void fill_bytes_const(unsigned char* dst, u64 n, unsigned v) {
  for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) dst[i] = (unsigned char)v;
}
LLMRT_EXPORT(fill_bytes_const)

#define FILL(S, T)                                                                               \
  extern "C" __global__ void fill_uniform_##S(T* dst, u64 n, u64 seed, float lo, float hi) {     \
    fill_uniform<T>(dst, n, seed, lo, hi);                                                       \
  }                                                                                              \
  LLMRT_EXPORT(fill_uniform_##S)

FILL(f32, float)
FILL(bf16, bf16)
FILL(f16, f16)
FILL(fp8, fp8)

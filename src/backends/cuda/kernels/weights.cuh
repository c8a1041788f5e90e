// Weight formats of linear layers, W [N, K] row-major (out, in), and how to read them
// as float. Quantized formats dequantize on the fly (weight-only quantization):
//   WF32/WBF16/WF16  plain
//   WI8              int8, one float scale per output row, or per row and group of
//                    `group` columns (GGUF Q8_0: 32):          w = q * scale[n, k / group]
//   WI4              int4, two per byte (even k in the low nibble), one float scale per
//                    row and group of `group` columns, zero at 8: w = (q - 8) * scale[n, k / group]
//   WI4Z             the same with a zero point per row and group, one byte each (AWQ, GPTQ,
//                    --int4-asym):                   w = (q - zero[n, k / group]) * scale[n, k / group]
//   WFP8             fp8 e4m3, one float scale per output row:  w = q * scale[n]
#pragma once
#include "common.cuh"

struct WeightRef {
  const void* w;
  const float* scale;  // WFP8: [N]; WI8, WI4: [N, K / group]
  int group;           // WI4: a multiple of 32; WI8: a multiple of 16, = K for one scale per row
  const unsigned char* zero;  // WI4Z: [N, K / group], one byte per group; null otherwise
};

struct WF32 {
  static constexpr int VEC = 4;  // values per 16-byte load
  __device__ static float at(const WeightRef& r, int K, int n, int k) { return ((const float*)r.w)[(size_t)n * K + k]; }
  __device__ static void vec(const WeightRef& r, int K, int n, int k, float* out) {
    const float4 v = *(const float4*)((const float*)r.w + (size_t)n * K + k);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
  }
};

template <typename H>  // bf16 or f16
struct WHalf {
  static constexpr int VEC = 8;
  __device__ static float at(const WeightRef& r, int K, int n, int k) { return to_f(((const H*)r.w)[(size_t)n * K + k]); }
  __device__ static void vec(const WeightRef& r, int K, int n, int k, float* out) {
    const uint4 v = *(const uint4*)((const H*)r.w + (size_t)n * K + k);
    const H* h = (const H*)&v;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = to_f(h[e]);
  }
};
typedef WHalf<bf16> WBF16;
typedef WHalf<f16> WF16;

struct WI8 {
  static constexpr int VEC = 16;
  // one scale per row (group == K: no division on the common path) or per group
  __device__ static float scale_at(const WeightRef& r, int K, int n, int k) {
    return r.group == K ? r.scale[n] : r.scale[(size_t)n * (K / r.group) + k / r.group];
  }
  __device__ static float at(const WeightRef& r, int K, int n, int k) {
    return (float)((const signed char*)r.w)[(size_t)n * K + k] * scale_at(r, K, n, k);
  }
  // 16 values of one group (k a multiple of 16, group a multiple of 16)
  __device__ static void vec(const WeightRef& r, int K, int n, int k, float* out) {
    const uint4 v = *(const uint4*)((const signed char*)r.w + (size_t)n * K + k);
    const signed char* q = (const signed char*)&v;
    const float s = scale_at(r, K, n, k);
#pragma unroll
    for (int e = 0; e < 16; e++) out[e] = (float)q[e] * s;
  }
};

// ZP: a zero point per group read with its scale (one byte per 32 values at most); a
// template parameter so the symmetric kernels compile exactly as before, no branch inside
template <bool ZP>
struct WI4T {
  static constexpr int VEC = 32;
  __device__ static float at(const WeightRef& r, int K, int n, int k) {
    const unsigned char b = ((const unsigned char*)r.w)[((size_t)n * K + k) >> 1];
    const int q = (k & 1) ? (b >> 4) : (b & 15);
    const size_t g = (size_t)n * (K / r.group) + k / r.group;
    if constexpr (ZP) return ((float)q - (float)r.zero[g]) * r.scale[g];
    else return (float)(q - 8) * r.scale[g];
  }
  // 32 values of one group (k a multiple of 32, group a multiple of 32)
  __device__ static void vec(const WeightRef& r, int K, int n, int k, float* out) {
    const uint4 v = *(const uint4*)((const unsigned char*)r.w + (((size_t)n * K + k) >> 1));
    const unsigned char* b = (const unsigned char*)&v;
    const size_t g = (size_t)n * (K / r.group) + k / r.group;
    const float s = r.scale[g];
    if constexpr (ZP) {
      // (q - z) * s as the reference computes it (packed.ts dequantizeRow): exact in f32
      const float z = (float)r.zero[g];
#pragma unroll
      for (int e = 0; e < 16; e++) {
        out[2 * e] = ((float)(b[e] & 15) - z) * s;
        out[2 * e + 1] = ((float)(b[e] >> 4) - z) * s;
      }
    } else {
#pragma unroll
      for (int e = 0; e < 16; e++) {
        out[2 * e] = (float)((b[e] & 15) - 8) * s;
        out[2 * e + 1] = (float)((b[e] >> 4) - 8) * s;
      }
    }
  }
};
typedef WI4T<false> WI4;
typedef WI4T<true> WI4Z;

struct WFP8 {
  static constexpr int VEC = 16;
  __device__ static float at(const WeightRef& r, int K, int n, int k) {
    return to_f(((const fp8*)r.w)[(size_t)n * K + k]) * r.scale[n];
  }
  __device__ static void vec(const WeightRef& r, int K, int n, int k, float* out) {
    const uint4 v = *(const uint4*)((const fp8*)r.w + (size_t)n * K + k);
    const fp8* q = (const fp8*)&v;
    const float s = r.scale[n];
#pragma unroll
    for (int e = 0; e < 16; e++) out[e] = to_f(q[e]) * s;
  }
};

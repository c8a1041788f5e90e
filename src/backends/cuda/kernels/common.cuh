// Shared by every kernel file: element types and their float conversions, warp and
// block reductions, and the tensor-core instruction the attention and GEMM kernels use.
//
// Conventions: activations are row-major [rows, cols] in the engine's activation type
// (float, bf16 or f16); all arithmetic is float32; norm weights and biases are float32.
// Every kernel is `extern "C"` with a type suffix (_f32, _bf16, _f16) so the host finds
// it by name in the cubin.
//
// Built three ways: by nvcc for the GPU, by NVRTC at engine load, and by the host C++
// compiler with LLMRT_EMU defined (emu/cuda_emu.hpp runs kernels on the CPU in tests).
#pragma once

#ifdef LLMRT_EMU
#include "../emu/cuda_emu.hpp"
#endif
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

typedef unsigned int u32;
typedef unsigned long long u64;
typedef __nv_bfloat16 bf16;
typedef __half f16;
typedef __nv_fp8_e4m3 fp8;

#ifndef LLMRT_EMU
#define LLMRT_EXPORT(name)
#endif

// ---- conversions -------------------------------------------------------------------

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(f16 x) { return __half2float(x); }
__device__ __forceinline__ float to_f(fp8 x) { return float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_f<f16>(float x) { return __float2half(x); }
template <> __device__ __forceinline__ fp8 from_f<fp8>(float x) { return fp8(x); }

// Two 16-bit values packed in one 32-bit register, low half first (the mma operand format).
__device__ __forceinline__ u32 pack2(bf16 lo, bf16 hi) {
  return (u32)__bfloat16_as_ushort(lo) | ((u32)__bfloat16_as_ushort(hi) << 16);
}
__device__ __forceinline__ u32 pack2(f16 lo, f16 hi) {
  return (u32)__half_as_ushort(lo) | ((u32)__half_as_ushort(hi) << 16);
}
template <typename T> __device__ __forceinline__ u32 pack2f(float lo, float hi) {
  return pack2(from_f<T>(lo), from_f<T>(hi));
}

// ---- 16-byte vectors ---------------------------------------------------------------

// Values of T in one 16-byte load (4 floats, 8 bf16/f16).
template <typename T> struct Vec16 {
  static constexpr int N = 16 / sizeof(T);
};

// o = p[0 .. N) as floats; p 16-byte aligned.
template <typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&o)[Vec16<T>::N]) {
  const uint4 raw = *(const uint4*)p;
  const T* h = (const T*)&raw;
#pragma unroll
  for (int e = 0; e < Vec16<T>::N; e++) o[e] = to_f(h[e]);
}

// p[0 .. N) = x rounded to T; p 16-byte aligned.
template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&x)[Vec16<T>::N]) {
  uint4 raw;
  T* h = (T*)&raw;
#pragma unroll
  for (int e = 0; e < Vec16<T>::N; e++) h[e] = from_f<T>(x[e]);
  *(uint4*)p = raw;
}

// ---- reductions --------------------------------------------------------------------

#ifdef LLMRT_EMU
// one warp exchange instead of five (same butterfly arithmetic): the emulator's cost is
// its barriers
__device__ __forceinline__ float warp_sum(float v) { return emu::warp_butterfly(v, false); }
__device__ __forceinline__ float warp_max(float v) { return emu::warp_butterfly(v, true); }
#else
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
#endif

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
// `scratch` holds 32 floats of shared memory; the trailing barrier lets callers reuse it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
  t = warp_sum(t);
  __syncthreads();
  return t;
}

// Max over the whole block, as block_sum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : -3.402823466e38f;
  t = warp_max(t);
  __syncthreads();
  return t;
}

// ---- tensor cores ------------------------------------------------------------------
//
// D[16x8] += A[16x16] * B[16x8], bf16 or f16 inputs, f32 accumulators (sm_80+).
// Lane L holds, with g = L / 4 and t = L % 4 (pairs are low half first):
//   a[0] = A[g][2t..2t+1]    a[1] = A[g+8][2t..2t+1]
//   a[2] = A[g][2t+8..+9]    a[3] = A[g+8][2t+8..+9]
//   b[0] = B[2t..2t+1][g]    b[1] = B[2t+8..2t+9][g]
//   c[0..1] = D[g][2t..2t+1] c[2..3] = D[g+8][2t..2t+1]

template <typename T> struct MmaType;
template <> struct MmaType<bf16> { static constexpr bool is_bf16 = true; };
template <> struct MmaType<f16> { static constexpr bool is_bf16 = false; };

template <typename T>
__device__ __forceinline__ void mma_16816(float c[4], const u32 a[4], const u32 b[2]) {
#ifdef LLMRT_EMU
  emu::mma_16816(c, a, b, MmaType<T>::is_bf16);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (MmaType<T>::is_bf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  // Older targets never launch the tensor-core kernels; the host picks the scalar ones.
  __trap();
#endif
}

// ---- asynchronous copies into shared memory -----------------------------------------
//
// cp.async (sm_80+): N bytes (8 or 16) global -> shared without passing through
// registers, so a block can start its next tile's loads and compute on the current one.
// Elsewhere (older targets, the emulator) a plain copy: the same result, synchronously.
template <int N>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  if constexpr (N == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(s), "l"(gmem), "n"(N));
  }
#else
  if constexpr (N == 16) *(uint4*)smem = *(const uint4*)gmem;
  else *(uint2*)smem = *(const uint2*)gmem;
#endif
}

// Closes the group of this thread's copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's committed groups are still in flight (a
// __syncthreads after it makes every thread's landed copies visible to the block).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// ---- programmatic dependent launch (Hopper) -------------------------------------------
//
// The host may launch a step's kernels so that each can start before the previous one
// has finished (cuLaunchKernelEx with programmatic stream serialization: driver.ts
// launchOverlapped). Every kernel of the units the host launches that way begins with
// pdl_wait() (all earlier kernels on the stream complete, their writes visible) before it
// reads an activation or writes anything, then pdl_trigger() (the next kernel may start
// its own blocks). Only constant weights may be touched before the wait (gemv's L2
// prefetch). Both are no-ops below sm_90, in the emulator, and in a plain launch.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Starts bringing the 128-byte line holding `p` into L2 (no-op in the emulator).
__device__ __forceinline__ void prefetch_l2(const void* p) {
#if defined(__CUDA_ARCH__)
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
#endif
}

// ---- small helpers -----------------------------------------------------------------

// 8 consecutive values as float, times `scale`, in one 16-byte load for 16-bit types
// (8 bytes for fp8, two for float). `p` must be aligned to 8 elements.
template <typename C>
__device__ __forceinline__ void load8(const C* p, float scale, float out[8]) {
  if constexpr (sizeof(C) == 2) {
    const uint4 v = *(const uint4*)p;
    const C* h = (const C*)&v;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = to_f(h[e]) * scale;
  } else if constexpr (sizeof(C) == 1) {
    const uint2 v = *(const uint2*)p;
    const C* h = (const C*)&v;
#pragma unroll
    for (int e = 0; e < 8; e++) out[e] = to_f(h[e]) * scale;
  } else {
    const float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
    out[0] = to_f(a.x) * scale, out[1] = to_f(a.y) * scale, out[2] = to_f(a.z) * scale, out[3] = to_f(a.w) * scale;
    out[4] = to_f(b.x) * scale, out[5] = to_f(b.y) * scale, out[6] = to_f(b.z) * scale, out[7] = to_f(b.w) * scale;
  }
}

__device__ __forceinline__ int div_up(int a, int b) { return (a + b - 1) / b; }

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// Flat KV slot of position `pos` of a sequence whose block table is `table`.
__device__ __forceinline__ int kv_slot(const int* table, int pos, int block_size) {
  return table[pos / block_size] * block_size + pos % block_size;
}

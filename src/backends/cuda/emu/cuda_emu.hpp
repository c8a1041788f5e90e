// CUDA on the CPU, for tests on machines without a GPU: enough of the CUDA C++ device
// language for kernels/*.cu to compile with the host C++ compiler (-DLLMRT_EMU) and run.
//
// Each block runs alone; its threads are fibers on one OS thread, switched only at
// barriers (__syncthreads, __syncwarp, shuffles, mma), so a run is deterministic and a
// missing barrier shows up as a deadlock report instead of a race. `__shared__` becomes
// `static`: blocks run one at a time, so one copy is right. Warp shuffles and the
// tensor-core mma are warp collectives built on an all-gather among the 32 lanes.
//
// Not a simulator of timing or of undefined behaviour: it checks indexing, masking,
// barriers and fragment layouts; real-GPU checks stay in bench/device-check.sh.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <vector_types.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <utility>

namespace emu {

struct Dim3 {
  unsigned x, y, z;
};

// The running fiber's coordinates (set by the launcher).
const Dim3& thread_idx();
const Dim3& block_idx();
const Dim3& block_dim();
const Dim3& grid_dim();

void syncthreads();
void syncwarp();
// Every lane of the calling warp contributes `bytes` at `mine`; `all` receives 32 slots.
void warp_allgather(const void* mine, void* all, size_t bytes);
void mma_16816(float c[4], const unsigned a[4], const unsigned b[2], bool bf16);
[[noreturn]] void trap();

// The xor-butterfly sum (or max) over the warp, as five __shfl_xor_sync steps compute it.
inline float warp_butterfly(float v, bool take_max) {
  float x[32];
  warp_allgather(&v, x, sizeof v);
  for (int o = 16; o > 0; o >>= 1) {
    float y[32];
    for (int i = 0; i < 32; i++) y[i] = take_max ? std::fmax(x[i], x[i ^ o]) : x[i] + x[i ^ o];
    std::memcpy(x, y, sizeof x);
  }
  return x[thread_idx().x & 31];
}

template <typename T>
T shfl_xor(T v, int mask) {
  T all[32];
  warp_allgather(&v, all, sizeof(T));
  return all[(thread_idx().x & 31) ^ mask];
}
template <typename T>
T shfl(T v, int src) {
  T all[32];
  warp_allgather(&v, all, sizeof(T));
  return all[src & 31];
}

// Kernel registry: LLMRT_EXPORT(name) records how to call `name` from a void** argument
// list (cuLaunchKernel's) and each argument's size (for graph capture).
typedef void (*Thunk)(void** params);
bool register_kernel(const char* name, Thunk thunk, int nargs, const size_t* sizes);

template <typename F>
struct Unpack;
template <typename... A>
struct Unpack<void (*)(A...)> {
  static constexpr size_t sizes[sizeof...(A) + 1] = {sizeof(A)..., 0};
  template <void (*F)(A...), size_t... I>
  static void call_impl(void** p, std::index_sequence<I...>) {
    F(*static_cast<A*>(p[I])...);
  }
  template <void (*F)(A...)>
  static void call(void** p) {
    call_impl<F>(p, std::index_sequence_for<A...>{});
  }
};

}  // namespace emu

#define LLMRT_EXPORT(name)                                                                                 \
  static const bool llmrt_registered_##name = emu::register_kernel(                                       \
      #name, &emu::Unpack<decltype(&name)>::template call<&name>, (int)(sizeof(emu::Unpack<decltype(&name)>::sizes) / sizeof(size_t)) - 1, \
      emu::Unpack<decltype(&name)>::sizes);

// ---- the device language -------------------------------------------------------------

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx())
#define blockDim (emu::block_dim())
#define gridDim (emu::grid_dim())

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::syncwarp(); }
// Barrier that also ORs a predicate over the block: zeroed after the first barrier, set
// between the second and third, read before anyone can reach the next call's zeroing.
inline int __syncthreads_or(int p) {
  static int acc;
  emu::syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) acc = 0;
  emu::syncthreads();
  if (p) acc = 1;
  emu::syncthreads();
  return acc;
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
  return emu::shfl_xor(v, mask);
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int src) {
  return emu::shfl(v, src);
}
[[noreturn]] inline void __trap() { emu::trap(); }

inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline float __int_as_float(unsigned i) { return __int_as_float((int)i); }
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
// One fiber runs at a time: plain read-modify-writes are atomic here.
inline int atomicMax(int* p, int v) {
  const int old = *p;
  if (v > old) *p = v;
  return old;
}
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}
// Blocks run one at a time and share one memory: a fence orders nothing more, and a
// read that skips L1 reads what any other read would.
inline void __threadfence() {}
template <typename T> inline T __ldcg(const T* p) { return *p; }

using std::fmaxf;
using std::fminf;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

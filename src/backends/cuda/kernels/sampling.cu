// Greedy and top-k selection on the device, so that only the winners of each logits row
// cross to the host. Ties go to the lower token id, as the host sampler's argmax does.
// grid (R), block 256; logits [R, V] float32.
#include "common.cuh"

// (value, id) ordered by value descending, then id ascending.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void warp_best(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) v = ov, i = oi;
  }
}

// The best (value, id) of the row strictly after (after_v, after_i) in that order:
// round r of top-k passes round r-1's winner. Every thread gets the result, and whether
// the row holds a NaN (which no comparison selects).
__device__ bool block_best(const float* row, int V, float after_v, int after_i, float& best_v, int& best_i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float v = neg_inf();
  int i = 0x7fffffff, nan = 0;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float x = row[j];
    nan |= x != x;
    if (better(after_v, after_i, x, j) && better(x, j, v, i)) v = x, i = j;
  }
  warp_best(v, i);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? sv[lane] : neg_inf();
  i = lane < (int)(blockDim.x >> 5) ? si[lane] : 0x7fffffff;
  warp_best(v, i);
  best_v = v, best_i = i;
  return __syncthreads_or(nan);
}

// ids [R] = argmax of each row; -1 where the row holds a NaN or nothing above -Infinity
// (the host sampler's error, raised by the caller)
extern "C" __global__ void argmax_rows(int* ids, const float* logits, int V) {
  pdl_wait(), pdl_trigger();
  float v;
  int i;
  const bool nan = block_best(logits + (size_t)blockIdx.x * V, V, __int_as_float(0x7f800000), -1, v, i);
  if (threadIdx.x == 0) ids[blockIdx.x] = nan || !(v > neg_inf()) ? -1 : i;
}
LLMRT_EXPORT(argmax_rows)

// ids, vals [R, k]: each row's k best, best first (k passes over the row: fine for the
// k <= 64 samplers use, and exact).
extern "C" __global__ void topk_rows(int* ids, float* vals, const float* logits, int V, int k) {
  pdl_wait(), pdl_trigger();
  const float* row = logits + (size_t)blockIdx.x * V;
  float v = __int_as_float(0x7f800000);
  int i = -1;
  for (int r = 0; r < k; r++) {
    block_best(row, V, v, i, v, i);
    if (threadIdx.x == 0) ids[(size_t)blockIdx.x * k + r] = i, vals[(size_t)blockIdx.x * k + r] = v;
  }
}
LLMRT_EXPORT(topk_rows)

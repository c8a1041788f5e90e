// Greedy and top-k selection on the device, so that only the winners of each logits row
// cross to the host. Ties go to the lower token id, as the host sampler's argmax does.
// logits [R, V] float32. A row is split into P chunks, one block each (one block a row
// read an 8B model's 128K logits with a few KB of loads in flight; on the H200 a greedy
// step took 0.32 ms longer than the step's graph replay, 0.06 ms with 32K logits); each
// block keeps its chunk's k best, and the last block of a row to finish merges the P * k
// candidates (the tiled attention's counter pattern: the count returns to zero).
#include "common.cuh"

constexpr int NAN_ID = -2;  // a chunk's argmax candidate id when the chunk holds a NaN

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

// The best (value, id) among n entries strictly after (after_v, after_i) in that order:
// round r of top-k passes round r-1's winner. get(j, v, id) reads entry j. Every thread
// gets the result, and whether an entry was a NaN (which no comparison selects).
template <typename Get>
__device__ bool block_best(int n, Get get, float after_v, int after_i, float& best_v, int& best_i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float v = neg_inf();
  int i = 0x7fffffff, nan = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float x;
    int id;
    get(j, x, id);
    nan |= x != x;
    if (better(after_v, after_i, x, id) && better(x, id, v, i)) v = x, i = id;
  }
  warp_best(v, i);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // sv / si may still be read by the previous round
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  v = lane < (int)(blockDim.x >> 5) ? sv[lane] : neg_inf();
  i = lane < (int)(blockDim.x >> 5) ? si[lane] : 0x7fffffff;
  warp_best(v, i);
  best_v = v, best_i = i;
  return __syncthreads_or(nan);
}

// grid (P, R), block 256. ids, vals [R, k]: each row's k best, best first (k
// passes over a chunk, then over the P * k candidates: fine for the k <= 64 samplers use,
// and exact). part_ids, part_vals [R, P, k]; done [R] zero before and after. ARGMAX (k = 1):
// vals unused, ids -1 where the row holds a NaN or nothing above -Infinity (the host
// sampler's error, raised by the caller).
template <bool ARGMAX>
__device__ void select_split(int* ids, float* vals, int* part_ids, float* part_vals, int* done, const float* logits, int V, int k, int chunk) {
  pdl_wait(), pdl_trigger();
  const int r = blockIdx.y, P = gridDim.x;
  const int lo = blockIdx.x * chunk, n = max(0, min(V, lo + chunk) - lo);
  const float* row = logits + (size_t)r * V + lo;
  const size_t part = ((size_t)r * P + blockIdx.x) * k;
  float v = __int_as_float(0x7f800000);
  int i = -1;
  for (int q = 0; q < k; q++) {
    const bool nan = block_best(n, [&](int j, float& x, int& id) { x = row[j], id = lo + j; }, v, i, v, i);
    if (threadIdx.x == 0) part_ids[part + q] = ARGMAX && nan ? NAN_ID : i, part_vals[part + q] = v;
  }
  __shared__ bool s_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    s_last = atomicAdd(done + r, 1) == P - 1;
    if (s_last) done[r] = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const int* cid = part_ids + (size_t)r * P * k;
  const float* cval = part_vals + (size_t)r * P * k;
  v = __int_as_float(0x7f800000), i = -1;
  for (int q = 0; q < k; q++) {
    int nan_seen = 0;
    block_best(P * k, [&](int j, float& x, int& id) {
        id = __ldcg(cid + j), x = __ldcg(cval + j);
        if (id == NAN_ID) nan_seen = 1, x = neg_inf(), id = 0x7fffffff;
      }, v, i, v, i);
    if (ARGMAX) {
      const bool nan = __syncthreads_or(nan_seen);
      if (threadIdx.x == 0) ids[r] = nan || !(v > neg_inf()) ? -1 : i;
    } else if (threadIdx.x == 0) {
      ids[(size_t)r * k + q] = i, vals[(size_t)r * k + q] = v;
    }
  }
}

extern "C" __global__ void argmax_split(int* ids, int* part_ids, float* part_vals, int* done, const float* logits, int V, int chunk) {
  select_split<true>(ids, nullptr, part_ids, part_vals, done, logits, V, 1, chunk);
}
LLMRT_EXPORT(argmax_split)

extern "C" __global__ void topk_split(int* ids, float* vals, int* part_ids, float* part_vals, int* done, const float* logits, int V, int k, int chunk) {
  select_split<false>(ids, vals, part_ids, part_vals, done, logits, V, k, chunk);
}
LLMRT_EXPORT(topk_split)

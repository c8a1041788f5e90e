// The end of a decode-attention block that covers one split of a row's visible keys
// (attention_tiled.cu, attention_mma.cu): with one split the block writes out = O / L;
// otherwise it writes its partial (part_o [n, H, splits, D], part_ml [n, H, splits, 2]),
// and the last block of the row's splits to finish merges them all, so the merge costs no
// second launch. `done` counts finished splits per (row, head chunk) and is left at zero.
#pragma once
#include "common.cuh"

// O(g, d), L(g), M(g): this block's unnormalized output, sum and running max of head
// h0 + g (M = -inf and L = 0 for an empty split). `scratch`: 2 * GMAX * SPLITS_MAX floats of
// shared memory the caller is done with once the partials are written. Every thread of
// the block calls it; t is the step row the block attends for.
template <typename T, int GMAX, int SPLITS_MAX, typename FO, typename FL, typename FM>
__device__ void finish_splits(T* out, float* part_o, float* part_ml, int* done, float* scratch, int t, int H, int h0,
                              int G, int D, int splits, FO O, FL L, FM M) {
  __shared__ int s_last;
  const int tid = threadIdx.x, threads = blockDim.x;
  const size_t q_dim = (size_t)H * D, prow = (size_t)blockIdx.x * H;
  for (int i = tid; i < G * D; i += threads) {
    const int g = i / D, d = i % D, h = h0 + g;
    if (splits == 1) {
      out[t * q_dim + h * D + d] = from_f<T>(O(g, d) / L(g));
    } else {
      const size_t p = (prow + h) * splits + blockIdx.z;
      part_o[p * D + d] = O(g, d);
      if (d == 0) part_ml[p * 2] = M(g), part_ml[p * 2 + 1] = L(g);
    }
  }
  if (splits == 1) return;

  __threadfence();
  __syncthreads();
  int* count = done + blockIdx.x * gridDim.y + blockIdx.y;
  if (tid == 0) {
    const int before = atomicAdd(count, 1);
    s_last = before == splits - 1;
    if (s_last) *count = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  // each (head, split)'s weight e^(M_z - M) / sum_z L_z e^(M_z - M) once, then every
  // output a sum of independent loads
  float(*s_w)[SPLITS_MAX] = reinterpret_cast<float(*)[SPLITS_MAX]>(scratch);           // [GMAX][SPLITS_MAX]
  float(*s_lz)[SPLITS_MAX] = reinterpret_cast<float(*)[SPLITS_MAX]>(scratch) + GMAX;    // [GMAX][SPLITS_MAX]
  for (int i = tid; i < G * splits; i += threads) {
    const int g = i / splits, z = i % splits;
    const size_t p = (prow + h0 + g) * splits + z;
    s_w[g][z] = __ldcg(part_ml + p * 2), s_lz[g][z] = __ldcg(part_ml + p * 2 + 1);
  }
  __syncthreads();
  if (tid < G) {
    float Mx = neg_inf(), Lx = 0.f;
    for (int z = 0; z < splits; z++) Mx = fmaxf(Mx, s_w[tid][z]);
    for (int z = 0; z < splits; z++) {
      const float w = s_w[tid][z] == neg_inf() ? 0.f : expf(s_w[tid][z] - Mx);  // an empty split weighs nothing
      s_w[tid][z] = w, Lx += s_lz[tid][z] * w;
    }
    for (int z = 0; z < splits; z++) s_w[tid][z] /= Lx;
  }
  __syncthreads();
  for (int i = tid; i < G * D; i += threads) {
    const int g = i / D, d = i % D;
    const float* po = part_o + (prow + h0 + g) * splits * D + d;
    float Ox = 0.f;
#pragma unroll 8
    for (int z = 0; z < splits; z++) Ox += __ldcg(po + (size_t)z * D) * s_w[g][z];
    out[t * q_dim + (h0 + g) * D + d] = from_f<T>(Ox);
  }
}

// A split decode form's kernel: the argument list launchAttention (attention.ts) passes
// every form that merges its own splits, then FN<T, C, DM> with the same arguments.
#define SPLIT_DECODE_KERNEL(NAME, FN, THREADS, T, C, DM)                                                          \
  extern "C" __global__ void __launch_bounds__(THREADS) NAME(                                                      \
      T* out, float* part_o, float* part_ml, int* done, const T* q, const C* kc, const C* vc, const int* tokens,   \
      const int* token_seq, const int* positions, const int* block_tables, int max_blocks, int block_size, int H,  \
      int KH, int D, float scale, int window, int splits, float kv_scale) {                                        \
    pdl_wait(), pdl_trigger();                                                                                     \
    FN<T, C, DM>(out, part_o, part_ml, done, q, kc, vc, tokens, token_seq, positions, block_tables, max_blocks,     \
                 block_size, H, KH, D, scale, window, splits, kv_scale);                                           \
  }                                                                                                                \
  LLMRT_EXPORT(NAME)

// The pieces the tensor-core attention kernels share (attention_prefill.cu over 64-row
// query tiles, attention_mma.cu over a KV head's query heads): staging a key tile from
// the paged cache, and the online softmax over a warp's S accumulators (mma_16816's C
// layout: lane g = lane / 4 holds rows g and g + 8, the quad's 4 lanes a row's columns).
#pragma once
#include "common.cuh"

// Ks [BK][KP] = K, Vt [D][VP] = V transposed, of keys kt .. kt + BK - 1 (zero from `end` on),
// from the paged cache (kv_scale applied, stored as T). Consecutive threads take
// consecutive keys (the V^T stores then hit distinct banks), 8 dims each; the caller
// synchronizes after.
template <typename T, typename C, int D, int BK, int KP, int VP>
__device__ __forceinline__ void stage_kv_tile(T (*Ks)[KP], T (*Vt)[VP], const C* kc, const C* vc, const int* table,
                                              int block_size, int kv_dim, int kh, int kt, int end, float kv_scale) {
  for (int c = threadIdx.x; c < BK * (D / 8); c += blockDim.x) {
    const int key = c % BK, d8 = (c / BK) * 8, j = kt + key;
    float kv[8], vv[8];
    if (j < end) {
      const size_t row = (size_t)kv_slot(table, j, block_size) * kv_dim + kh * D + d8;
      load8(kc + row, kv_scale, kv);
      load8(vc + row, kv_scale, vv);
    } else {
#pragma unroll
      for (int e = 0; e < 8; e++) kv[e] = vv[e] = 0.f;
    }
#pragma unroll
    for (int e = 0; e < 8; e++) {
      Ks[key][d8 + e] = from_f<T>(kv[e]);
      Vt[d8 + e][key] = from_f<T>(vv[e]);
    }
  }
}

// One online-softmax step for a warp's rows over NT 8-column tiles of masked, scaled
// scores s (-inf where hidden), whose per-lane maxima are mx0 / mx1: the rows' maxima m
// and this lane's share of their sums l move on, s becomes P = e^(s - m), and the output
// accumulators o are rescaled. A row with nothing visible yet keeps p = 0 (exp of -inf)
// instead of NaN.
template <int NT, int DT>
__device__ __forceinline__ void softmax_step(float (&s)[NT][4], float mx0, float mx1, float& m0, float& m1, float& l0,
                                             float& l1, float (&o)[DT][4]) {
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
  const float mu0 = mn0 == neg_inf() ? 0.f : mn0, mu1 = mn1 == neg_inf() ? 0.f : mn1;
  const float c0 = expf(m0 - mu0), c1 = expf(m1 - mu1);
  l0 *= c0, l1 *= c1;
#pragma unroll
  for (int nt = 0; nt < NT; nt++) {
    s[nt][0] = expf(s[nt][0] - mu0), s[nt][1] = expf(s[nt][1] - mu0);
    s[nt][2] = expf(s[nt][2] - mu1), s[nt][3] = expf(s[nt][3] - mu1);
    l0 += s[nt][0] + s[nt][1], l1 += s[nt][2] + s[nt][3];
  }
#pragma unroll
  for (int dt = 0; dt < DT; dt++) o[dt][0] *= c0, o[dt][1] *= c0, o[dt][2] *= c1, o[dt][3] *= c1;
  m0 = mn0, m1 = mn1;
}

// A row's sum over its quad (the 4 lanes holding its columns).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// P's A fragment for keys 16kk .. 16kk + 15 from the S accumulators of 8-column tiles 2kk, 2kk + 1.
template <typename T, int NT>
__device__ __forceinline__ void p_fragment(const float (&s)[NT][4], int kk, u32 (&a)[4]) {
  a[0] = pack2f<T>(s[2 * kk][0], s[2 * kk][1]), a[1] = pack2f<T>(s[2 * kk][2], s[2 * kk][3]);
  a[2] = pack2f<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]), a[3] = pack2f<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
}

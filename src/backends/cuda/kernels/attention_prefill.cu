// Paged causal attention for prefill chunks, flash-attention style on tensor cores
// (mma.sync m16n8k16, bf16/f16, f32 accumulators), ragged over sequences.
// Semantics: attention in src/backends/reference/ops.ts (sliding window, GQA).
//
// grid (tiles, H), block 128 = 4 warps. A tile is 64 query rows of one sequence:
// tiles[2i] = sequence, tiles[2i+1] = its first step row; rows past the sequence's end
// idle. Warp w owns rows 16w..16w+15. For each 64-key tile of the visible range, K and
// V (transposed) are staged in shared memory, S = Q K^T and O += P V run on tensor
// cores, and an online softmax keeps each row's max and sum in registers.
#include "attention_mma.cuh"

template <typename T, typename C, int D>
__device__ void attn_prefill(T* out, const T* q, const C* kc, const C* vc, const int* tiles, const int* seq_starts,
                             const int* positions, const int* block_tables, int max_blocks, int block_size, int H,
                             int KH, float scale, int window, float kv_scale) {
  constexpr int BQ = 64, BK = 64, KP = D + 8, VP = BK + 8;  // +8: rows fall on distinct banks
  __shared__ __align__(16) T Ks[BK][KP];                    // K tile [key][dim]
  __shared__ __align__(16) T Vt[D][VP];                     // V tile transposed [dim][key]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, tq = lane & 3;
  const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y, kh = h / (H / KH);
  const int nrows = min(BQ, seq_starts[seq + 1] - q0);
  const int* table = block_tables + (size_t)seq * max_blocks;
  const int q_dim = H * D, kv_dim = KH * D;

  // this lane's two rows, their positions and first visible key (-1: no such row)
  const int r0 = warp * 16 + g, r1 = r0 + 8;
  const int pos0 = r0 < nrows ? positions[q0 + r0] : -1, pos1 = r1 < nrows ? positions[q0 + r1] : -1;
  const int first0 = window > 0 ? max(0, pos0 - window + 1) : 0, first1 = window > 0 ? max(0, pos1 - window + 1) : 0;

  // Q fragments, straight from global memory: qf[kk] covers dims 16kk..16kk+15
  u32 qf[D / 16][4];
  const u32 zero = 0;
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    const int c = kk * 16 + 2 * tq;
    const T* q0p = q + (size_t)(q0 + r0) * q_dim + h * D + c;
    const T* q1p = q + (size_t)(q0 + r1) * q_dim + h * D + c;
    qf[kk][0] = pos0 >= 0 ? *(const u32*)q0p : zero;
    qf[kk][1] = pos1 >= 0 ? *(const u32*)q1p : zero;
    qf[kk][2] = pos0 >= 0 ? *(const u32*)(q0p + 8) : zero;
    qf[kk][3] = pos1 >= 0 ? *(const u32*)(q1p + 8) : zero;
  }

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.f, l1 = 0.f;  // l: this lane's share of the row sums

  const int pos_first = positions[q0], pos_last = positions[q0 + nrows - 1];
  const int k_begin = window > 0 ? max(0, pos_first - window + 1) : 0;
  for (int kt = k_begin; kt <= pos_last; kt += BK) {
    stage_kv_tile<T, C, D, BK, KP, VP>(Ks, Vt, kc, vc, table, block_size, kv_dim, kh, kt, pos_last + 1, kv_scale);
    __syncthreads();

    // S [16 x 64] = Q K^T for this warp's rows
    float s[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        const u32 b[2] = {*(const u32*)&Ks[nt * 8 + g][kk * 16 + 2 * tq], *(const u32*)&Ks[nt * 8 + g][kk * 16 + 2 * tq + 8]};
        mma_16816<T>(s[nt], qf[kk], b);
      }
    }

    // causal + window mask, scale, this lane's row maxima (a row's 64 values sit in the 4 lanes of a quad)
    float mx0 = neg_inf(), mx1 = neg_inf();
#pragma unroll
    for (int nt = 0; nt < BK / 8; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = kt + nt * 8 + 2 * tq + (e & 1);
        const bool top = e < 2;
        const int pos = top ? pos0 : pos1, first = top ? first0 : first1;
        const bool ok = pos >= 0 && key <= pos && key >= first;
        s[nt][e] = ok ? s[nt][e] * scale : neg_inf();
        if (top) mx0 = fmaxf(mx0, s[nt][e]);
        else mx1 = fmaxf(mx1, s[nt][e]);
      }
    }
    softmax_step(s, mx0, mx1, m0, m1, l0, l1, o);

    // O [16 x D] += P V: the S accumulators are already laid out as P's A fragments
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
      u32 a[4];
      p_fragment<T>(s, kk, a);
#pragma unroll
      for (int dt = 0; dt < D / 8; dt++) {
        const u32 b[2] = {*(const u32*)&Vt[dt * 8 + g][kk * 16 + 2 * tq], *(const u32*)&Vt[dt * 8 + g][kk * 16 + 2 * tq + 8]};
        mma_16816<T>(o[dt], a, b);
      }
    }
    __syncthreads();  // the next tile overwrites Ks and Vt
  }

  l0 = quad_sum(l0), l1 = quad_sum(l1);
#pragma unroll
  for (int dt = 0; dt < D / 8; dt++) {
    const int c = h * D + dt * 8 + 2 * tq;
    if (pos0 >= 0) {
      T* p = out + (size_t)(q0 + r0) * q_dim + c;
      p[0] = from_f<T>(o[dt][0] / l0), p[1] = from_f<T>(o[dt][1] / l0);
    }
    if (pos1 >= 0) {
      T* p = out + (size_t)(q0 + r1) * q_dim + c;
      p[0] = from_f<T>(o[dt][2] / l1), p[1] = from_f<T>(o[dt][3] / l1);
    }
  }
}

#define PREFILL(S, T, C, D)                                                                                       \
  extern "C" __global__ void __launch_bounds__(128) attn_prefill_##S##_d##D(                                      \
      T* out, const T* q, const C* kc, const C* vc, const int* tiles, const int* seq_starts, const int* positions, \
      const int* block_tables, int max_blocks, int block_size, int H, int KH, float scale, int window,            \
      float kv_scale) {  \
    pdl_wait(), pdl_trigger();                                                                                           \
    attn_prefill<T, C, D>(out, q, kc, vc, tiles, seq_starts, positions, block_tables, max_blocks, block_size, H,  \
                          KH, scale, window, kv_scale);                                                           \
  }                                                                                                               \
  LLMRT_EXPORT(attn_prefill_##S##_d##D)

PREFILL(bf16, bf16, bf16, 64)
PREFILL(bf16, bf16, bf16, 128)
PREFILL(f16, f16, f16, 64)
PREFILL(f16, f16, f16, 128)
PREFILL(bf16_fp8, bf16, fp8, 64)
PREFILL(bf16_fp8, bf16, fp8, 128)
PREFILL(f16_fp8, f16, fp8, 64)
PREFILL(f16_fp8, f16, fp8, 128)

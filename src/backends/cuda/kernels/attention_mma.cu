// Paged decode attention on tensor cores for grouped-query models: the query heads that
// share a KV head (up to 16) are the rows of one m16 tile, so S = Q K^T and O += P V run
// as mma.sync m16n8k16 (bf16 / f16, f32 accumulators) instead of a multiply-add per
// element from shared memory (attention_tiled.cu), which bounds that form when a KV head
// serves 8 query heads of size 64. Same semantics as attention_decode.cu (reference:
// attention in src/backends/reference/ops.ts).
//
// grid (n, KH * chunks, splits), block 128 = 4 warps. A block stages 64-key tiles of its
// split (K as [key][dim], V transposed as [dim][key], as attention_prefill.cu does); warp
// w takes keys 16w..16w+15 of each tile with its own online softmax, and the warps merge
// once at the end; the splits merge in the last block to finish (attention_splits.cuh).
// Head size 64 or 128; 16-bit activations; a 16-bit or fp8 cache.
#include "attention_mma.cuh"
#include "attention_splits.cuh"

namespace mma_decode {

constexpr int GMAX = 16;  // query heads per block: the rows of one mma tile (attention.ts MMA_HEADS_PER_BLOCK)
constexpr int BK = 64;    // keys per tile, 16 per warp (attention.ts MMA_TILE_KEYS)
constexpr int THREADS = 128;
constexpr int SPLITS_MAX = 32;  // attention.ts MAX_SPLITS

__host__ __device__ constexpr int cmax(int a, int b) { return a > b ? a : b; }

template <typename T, typename C, int D>
__device__ void decode(T* out, float* part_o, float* part_ml, int* done, const T* q, const C* kc, const C* vc,
                       const int* tokens, const int* token_seq, const int* positions, const int* block_tables,
                       int max_blocks, int block_size, int H, int KH, int /* the head size: D */, float scale, int window,
                       int splits, float kv_scale) {
  constexpr int KP = D + 8, VP = BK + 8;  // +8: rows fall on distinct banks
  constexpr int STAGE = (BK * KP + D * VP) * (int)sizeof(T);
  constexpr int MERGE = 4 * GMAX * D * 4;  // the warps' outputs, after the tiles
  __shared__ __align__(16) unsigned char s_big[cmax(cmax(STAGE, MERGE), 2 * GMAX * SPLITS_MAX * 4)];
  __shared__ float s_m[4][GMAX], s_l[4][GMAX];  // each warp's row maxima and sums
  __shared__ float s_f[4][GMAX], s_mx[GMAX], s_sum[GMAX];  // each warp's weight in the merge; the block's max and sum
  T(*Ks)[KP] = reinterpret_cast<T(*)[KP]>(s_big);                                  // [BK][KP]
  T(*Vt)[VP] = reinterpret_cast<T(*)[VP]>(s_big + BK * KP * sizeof(T));            // [D][VP]
  float(*s_o)[GMAX][D] = reinterpret_cast<float(*)[GMAX][D]>(s_big);              // [4][GMAX][D]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
  const int group = H / KH, chunks = div_up(group, GMAX);
  const int kh = blockIdx.y / chunks, h0 = kh * group + (blockIdx.y % chunks) * GMAX;
  const int G = min(GMAX, kh * group + group - h0);
  const int t = tokens[blockIdx.x], seq = token_seq[t], pos = positions[t];
  const int* table = block_tables + (size_t)seq * max_blocks;
  const int kv_dim = KH * D, q_dim = H * D;

  // this split's whole tiles of the visible positions [first, pos]
  const int first = window > 0 ? max(0, pos - window + 1) : 0;
  const int per = div_up(div_up(pos - first + 1, splits), BK) * BK;
  const int lo = first + blockIdx.z * per, hi = min(pos + 1, lo + per);

  // Q fragments: this lane's rows are heads h0 + g and h0 + g + 8 (zero past G)
  const int r0 = g, r1 = g + 8;
  u32 qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
    const int c = kk * 16 + 2 * tq;
    const T* q0p = q + (size_t)t * q_dim + (h0 + r0) * D + c;
    const T* q1p = q + (size_t)t * q_dim + (h0 + r1) * D + c;
    qf[kk][0] = r0 < G ? *(const u32*)q0p : 0u;
    qf[kk][1] = r1 < G ? *(const u32*)q1p : 0u;
    qf[kk][2] = r0 < G ? *(const u32*)(q0p + 8) : 0u;
    qf[kk][3] = r1 < G ? *(const u32*)(q1p + 8) : 0u;
  }

  float o[D / 8][4];
#pragma unroll
  for (int dt = 0; dt < D / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.f;
  float m0 = neg_inf(), m1 = neg_inf(), l0 = 0.f, l1 = 0.f;  // l: this lane's share of its rows' sums

  for (int kt = lo; kt < hi; kt += BK) {
    stage_kv_tile<T, C, D, BK, KP, VP>(Ks, Vt, kc, vc, table, block_size, kv_dim, kh, kt, hi, kv_scale);
    __syncthreads();

    // S [16 heads x 16 keys] for this warp's keys 16 warp .. 16 warp + 15
    const int k0 = 16 * warp;
    float s[2][4];
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        const u32 b[2] = {*(const u32*)&Ks[k0 + nt * 8 + g][kk * 16 + 2 * tq], *(const u32*)&Ks[k0 + nt * 8 + g][kk * 16 + 2 * tq + 8]};
        mma_16816<T>(s[nt], qf[kk], b);
      }
    }
    // keys past the split's end masked; scale; this lane's row maxima
    float mx0 = neg_inf(), mx1 = neg_inf();
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const bool ok = kt + k0 + nt * 8 + 2 * tq + (e & 1) < hi;
        s[nt][e] = ok ? s[nt][e] * scale : neg_inf();
        if (e < 2) mx0 = fmaxf(mx0, s[nt][e]);
        else mx1 = fmaxf(mx1, s[nt][e]);
      }
    }
    softmax_step(s, mx0, mx1, m0, m1, l0, l1, o);

    // O [16 x D] += P V over the warp's 16 keys: the S accumulators are P's A fragment
    u32 a[4];
    p_fragment<T>(s, 0, a);
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
      const u32 b[2] = {*(const u32*)&Vt[dt * 8 + g][k0 + 2 * tq], *(const u32*)&Vt[dt * 8 + g][k0 + 2 * tq + 8]};
      mma_16816<T>(o[dt], a, b);
    }
    __syncthreads();  // the next tile overwrites Ks and Vt
  }

  // merge the warps: each row's (max, sum, output) into shared memory (over the stages)
  l0 = quad_sum(l0), l1 = quad_sum(l1);
  __syncthreads();  // no tile at all: nothing to wait for, but every warp passes here before s_o is written
#pragma unroll
  for (int dt = 0; dt < D / 8; dt++) {
    const int d = dt * 8 + 2 * tq;
    s_o[warp][r0][d] = o[dt][0], s_o[warp][r0][d + 1] = o[dt][1];
    s_o[warp][r1][d] = o[dt][2], s_o[warp][r1][d + 1] = o[dt][3];
  }
  if (tq == 0) s_m[warp][r0] = m0, s_m[warp][r1] = m1, s_l[warp][r0] = l0, s_l[warp][r1] = l1;
  __syncthreads();
  if (tid < G) {
    float M = neg_inf(), L = 0.f;
    for (int w = 0; w < 4; w++) M = fmaxf(M, s_m[w][tid]);
    for (int w = 0; w < 4; w++) {
      const float f = s_m[w][tid] == neg_inf() ? 0.f : expf(s_m[w][tid] - M);  // a warp with no visible key weighs nothing
      s_f[w][tid] = f, L += s_l[w][tid] * f;
    }
    s_mx[tid] = M, s_sum[tid] = L;  // an empty split: -inf, 0
  }
  __syncthreads();
  auto O = [=](int h, int d) {
    return s_o[0][h][d] * s_f[0][h] + s_o[1][h][d] * s_f[1][h] + s_o[2][h][d] * s_f[2][h] + s_o[3][h][d] * s_f[3][h];
  };
  finish_splits<T, GMAX, SPLITS_MAX>(out, part_o, part_ml, done, reinterpret_cast<float*>(s_big), t, H, h0, G, D, splits, O,
                                     [=](int h) { return s_sum[h]; }, [=](int h) { return s_mx[h]; });
}

}  // namespace mma_decode

#define MMA_DECODE(S, T, C, DM) SPLIT_DECODE_KERNEL(attn_decode_mma_##S##_d##DM, mma_decode::decode, mma_decode::THREADS, T, C, DM)
#define MMA_DECODE_D(S, T, C) MMA_DECODE(S, T, C, 64) MMA_DECODE(S, T, C, 128)

// the (activation, cache) pairs of dtypes.ts KV_PAIRS with 16-bit activations
MMA_DECODE_D(bf16, bf16, bf16)
MMA_DECODE_D(bf16_fp8, bf16, fp8)
MMA_DECODE_D(f16, f16, f16)
MMA_DECODE_D(f16_fp8, f16, fp8)

// Paged decode attention in key tiles staged through shared memory, with the KV splits
// merged by the last block to finish (no second kernel). Same semantics as
// attention_decode.cu (reference: attention in src/backends/reference/ops.ts).
//
// Why a third form: at small batch a decode step is a chain of dependent loads (block
// table -> slot -> K/V row). Here the block looks up a tile's TK slots together, then
// copies all of its K and V rows at once (cp.async, 16 bytes a copy, spread over the
// block's 128 threads) into one of two shared-memory stages, and computes on the other
// stage's tile meanwhile. Short splits (down to one tile) give enough blocks to cover
// the GPU at batch 1, and the merge costs no extra launch.
//
// grid (n, KH * chunks, splits), block 128 = 4 warps.
//   blockIdx.x  which listed query token; blockIdx.y KV head and chunk of <= GMAX query
//   heads sharing it; blockIdx.z split: a run of whole tiles of the visible positions.
// Scores: 4 threads per key, each a quarter of the head dims (interleaved 8-value
// chunks), summed by two shuffles. P V: a thread owns two output dims over a subset of
// the tile's keys; the subsets merge once at the end. 16-bit and fp8 caches, D <= 128,
// D a multiple of 8.
#include "attention_splits.cuh"

namespace tiled {

constexpr int GMAX = 8;          // query heads per block (attention.ts HEADS_PER_BLOCK)
constexpr int TK = 32;           // keys per tile (attention.ts TILE_KEYS)
constexpr int THREADS = 128;
constexpr int SPLITS_MAX = 32;   // attention.ts MAX_SPLITS
constexpr int TPK = THREADS / TK;  // threads per key in the score pass

// Two consecutive cache values (one 32-bit or 16-bit word of shared memory) as floats.
template <typename C> __device__ __forceinline__ void load2(const C* p, float scale, float& a, float& b) {
  a = to_f(p[0]) * scale, b = to_f(p[1]) * scale;
}

template <typename T, typename C, int DMAX>
__device__ void decode(T* out, float* part_o, float* part_ml, int* done, const T* q, const C* kc, const C* vc,
                       const int* tokens, const int* token_seq, const int* positions, const int* block_tables,
                       int max_blocks, int block_size, int H, int KH, int D, float scale, int window, int splits,
                       float kv_scale) {
  constexpr int CB = 8 * (int)sizeof(C);                 // bytes of one 8-value chunk
  constexpr int RS = DMAX * (int)sizeof(C) + 4 * CB;      // a staged row: padded so 4 rows' chunks hit distinct banks
  constexpr int PAIRS = DMAX / 2;                         // P V: threads per key subset, two dims each
  constexpr int KS = THREADS / PAIRS;                     // key subsets
  constexpr int STAGE_BYTES = 2 * 2 * TK * RS;           // two stages of a K and a V tile
  constexpr int MERGE_BYTES = KS * GMAX * DMAX * 4 > 2 * GMAX * SPLITS_MAX * 4 ? KS * GMAX * DMAX * 4 : 2 * GMAX * SPLITS_MAX * 4;
  constexpr int LOADS = TK * (DMAX / 8) / THREADS;        // chunks of K (and of V) per thread per tile
  __shared__ __align__(16) float s_q[GMAX][DMAX];         // this block's query heads, pre-scaled
  __shared__ float s_p[GMAX][TK];                         // the tile's probabilities
  __shared__ float s_red[4][GMAX];                        // per-warp maxima
  __shared__ float s_l[KS][GMAX];
  __shared__ float s_m[GMAX];                             // the running maxima at the end (the same in every thread)
  __shared__ int s_slot[2][TK];
  __shared__ __align__(16) unsigned char s_big[STAGE_BYTES > MERGE_BYTES ? STAGE_BYTES : MERGE_BYTES];
  // stage b: K tile at s_big + 2 b TK RS, V tile TK RS after it, each [TK][RS] bytes
  float(*s_o)[GMAX][DMAX] = reinterpret_cast<float(*)[GMAX][DMAX]>(s_big);  // [KS][GMAX][DMAX] after them

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int group = H / KH, chunks = div_up(group, GMAX);
  const int kh = blockIdx.y / chunks, h0 = kh * group + (blockIdx.y % chunks) * GMAX;
  const int G = min(GMAX, kh * group + group - h0);
  const int t = tokens[blockIdx.x], seq = token_seq[t], pos = positions[t];
  const int* table = block_tables + (size_t)seq * max_blocks;
  const int kv_dim = KH * D, q_dim = H * D, nch = D / 8;

  // this split's whole tiles of the visible positions [first, pos]
  const int first = window > 0 ? max(0, pos - window + 1) : 0;
  const int per = div_up(div_up(pos - first + 1, splits), TK) * TK;
  const int lo = first + blockIdx.z * per, hi = min(pos + 1, lo + per);

  for (int i = tid; i < GMAX * DMAX; i += THREADS) {
    const int g = i / DMAX, d = i % DMAX;
    s_q[g][d] = (g < G && d < D) ? to_f(q[(size_t)t * q_dim + (h0 + g) * D + d]) * scale : 0.f;
  }

  const int key = tid / TPK, sub = tid % TPK;  // score pass
  const int pair = tid % PAIRS, ks = tid / PAIRS, d0 = 2 * pair;  // P V pass
  float m[GMAX], acc[GMAX][2], l[GMAX];
#pragma unroll
  for (int g = 0; g < GMAX; g++) m[g] = neg_inf(), l[g] = 0.f, acc[g][0] = acc[g][1] = 0.f;

  // tile i covers [lo + i TK, min(hi, lo + (i + 1) TK)); its slots, then its rows, into stage i % 2
  const int tiles = hi > lo ? div_up(hi - lo, TK) : 0;
  auto look_up = [=](int i) {
    const int j = lo + i * TK + tid;
    if (tid < TK) s_slot[i & 1][tid] = j < hi ? kv_slot(table, j, block_size) : 0;
  };
  auto fetch = [=](int i) {
    const int n = min(TK, hi - lo - i * TK);
    unsigned char* k_tile = s_big + (i & 1) * 2 * TK * RS;
#pragma unroll
    for (int u = 0; u < LOADS; u++) {
      const int x = tid + u * THREADS, r = x / nch, c = x % nch;
      if (r < n) {
        const size_t src = (size_t)s_slot[i & 1][r] * kv_dim + kh * D + c * 8;
        cp_async<CB>(k_tile + r * RS + c * CB, kc + src);
        cp_async<CB>(k_tile + TK * RS + r * RS + c * CB, vc + src);
      }
    }
    cp_async_commit();
  };
  if (tiles > 0) {
    look_up(0);
    __syncthreads();
    fetch(0);
  }
  for (int i = 0; i < tiles; i++) {
    const int n = min(TK, hi - lo - i * TK);
    if (i + 1 < tiles) {  // the next tile's copies go out before this one is read
      look_up(i + 1);
      __syncthreads();  // also: every thread is done with stage (i + 1) % 2's last tile
      fetch(i + 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const unsigned char* s_k = s_big + (i & 1) * 2 * TK * RS;
    const unsigned char* s_v = s_k + TK * RS;

    // scores of key `key` against the G heads, a quarter of the dims per thread
    float s[GMAX];
#pragma unroll
    for (int g = 0; g < GMAX; g++) s[g] = 0.f;
    for (int c = sub; c < nch; c += TPK) {
      float k8[8];
      load8((const C*)(s_k + key * RS + c * CB), kv_scale, k8);
#pragma unroll
      for (int g = 0; g < GMAX; g++) {
        if (g >= G) break;
#pragma unroll
        for (int e = 0; e < 8; e++) s[g] += s_q[g][c * 8 + e] * k8[e];
      }
    }
    const bool valid = key < n;
#pragma unroll
    for (int g = 0; g < GMAX; g++) {
      if (g >= G) break;  // uniform over the block
      s[g] += __shfl_xor_sync(0xffffffffu, s[g], 1);
      s[g] += __shfl_xor_sync(0xffffffffu, s[g], 2);
      const float w = warp_max(valid ? s[g] : neg_inf());
      if (lane == 0) s_red[warp][g] = w;
    }
    __syncthreads();
    // online softmax: every thread keeps the same running max; P goes to shared memory
    float corr[GMAX];
#pragma unroll
    for (int g = 0; g < GMAX; g++) {
      corr[g] = 1.f;
      if (g >= G) continue;  // s_red holds nothing for these heads
      const float mn = fmaxf(m[g], fmaxf(fmaxf(s_red[0][g], s_red[1][g]), fmaxf(s_red[2][g], s_red[3][g])));
      corr[g] = expf(m[g] - mn);  // the first tile: exp(-inf) = 0
      if (sub == 0) s_p[g][key] = valid ? expf(s[g] - mn) : 0.f;
      m[g] = mn;
    }
    __syncthreads();

    // P V: dims d0, d0 + 1 over keys ks, ks + KS, ...; the running sum l alongside
#pragma unroll
    for (int g = 0; g < GMAX; g++) acc[g][0] *= corr[g], acc[g][1] *= corr[g], l[g] *= corr[g];
    if (d0 < D) {
      for (int r = ks; r < n; r += KS) {
        float v0, v1;
        load2((const C*)(s_v + r * RS) + d0, kv_scale, v0, v1);
#pragma unroll
        for (int g = 0; g < GMAX; g++) {
          if (g >= G) break;
          const float p = s_p[g][r];
          acc[g][0] += p * v0, acc[g][1] += p * v1, l[g] += p;
        }
      }
    }
  }

  // merge the key subsets (s_o reuses the stages: wait for the last tile's readers)
  __syncthreads();
#pragma unroll
  for (int g = 0; g < GMAX; g++) {
    s_o[ks][g][d0] = acc[g][0], s_o[ks][g][d0 + 1] = acc[g][1];
    if (pair == 0) s_l[ks][g] = l[g];
    if (tid == 0) s_m[g] = m[g];
  }
  __syncthreads();
  // this block's output from the key subsets' sums; the splits' merge
  auto O = [=](int g, int d) {
    float o = 0.f;
#pragma unroll
    for (int k = 0; k < KS; k++) o += s_o[k][g][d];
    return o;
  };
  auto L = [=](int g) {
    float x = 0.f;
#pragma unroll
    for (int k = 0; k < KS; k++) x += s_l[k][g];
    return x;
  };
  finish_splits<T, GMAX, SPLITS_MAX>(out, part_o, part_ml, done, reinterpret_cast<float*>(s_big), t, H, h0, G, D, splits, O, L,
                                     [=](int g) { return s_m[g]; });
}

}  // namespace tiled

#define TILED(S, T, C, DM) SPLIT_DECODE_KERNEL(attn_decode_tl_##S##_d##DM, tiled::decode, tiled::THREADS, T, C, DM)
#define TILED_D(S, T, C) TILED(S, T, C, 64) TILED(S, T, C, 128)

// the (activation, cache) pairs of dtypes.ts KV_PAIRS with a 16-bit or fp8 cache
TILED_D(f32_bf16, float, bf16)
TILED_D(f32_f16, float, f16)
TILED_D(bf16, bf16, bf16)
TILED_D(bf16_fp8, bf16, fp8)
TILED_D(f16, f16, f16)
TILED_D(f16_fp8, f16, fp8)

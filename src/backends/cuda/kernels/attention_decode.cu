// Paged attention, one query token per block row: flash-decoding, split over KV.
// Semantics: attention in src/backends/reference/ops.ts: the token at position p sees
// its sequence's cached positions max(0, p - window + 1) ..= p; query head h reads KV
// head h / (H / KH) (GQA). Correct for any token (prefill rows too); the host uses it
// for decode rows and for head sizes the tensor-core prefill kernel does not cover.
//
// grid (n, KH * chunks, splits), block 128 = 4 warps.
//   blockIdx.x  which listed query token: t = tokens[blockIdx.x]
//   blockIdx.y  KV head and chunk of up to GMAX query heads sharing it (they share K/V loads)
//   blockIdx.z  split: a contiguous share of the visible positions
// Each warp takes 32 keys at a time, one per lane: a lane computes its key's scores
// against the block's query heads (held in shared memory) with no cross-lane sums; the
// warp then updates an online softmax once per 32 keys and accumulates P V with each
// lane owning DMAX/32 output dims. The block merges its 4 warps; with splits > 1,
// attn_combine merges the splits. Head size D must be a multiple of 8 (<= DMAX).
#include "common.cuh"

constexpr int GMAX = 8;  // query heads per block (GQA group, or a chunk of it)
constexpr int SPLITS_MAX = 8;  // attention.ts MAX_SPLITS

// The vector type holding 8 cache values (fp8: 8 bytes; 16-bit: 16 bytes).
template <int BYTES> struct Copy8;
template <> struct Copy8<1> { typedef uint2 type; };
template <> struct Copy8<2> { typedef uint4 type; };

struct AttnStep {
  const int* tokens;        // [n] step rows to attend for
  const int* token_seq;     // [T] sequence of each step row
  const int* positions;     // [T]
  const int* block_tables;  // [S, max_blocks]
  int max_blocks;
  int block_size;
};

// STAGE_V: each lane loads its key's V row together with its K row and parks it in
// shared memory, so P V reads shared memory instead of waiting on HBM once per few keys
// (decode at small batch is a chain of dependent loads: table -> slot -> row). The V
// rows share their shared memory with the warps' merge buffer, which is used after.
template <typename T, typename C, int DMAX, bool STAGE_V>
__device__ void attn_decode(T* out, float* part_o, float* part_ml, const T* q, const C* kc, const C* vc, AttnStep st,
                            int H, int KH, int D, float scale, int window, int splits, float kv_scale) {
  constexpr int EPL = DMAX / 32;  // output dims per lane
  constexpr int VROW = DMAX + 16 / (int)sizeof(C);  // a staged V row, padded 16 bytes: rows start on distinct banks
  constexpr int O_BYTES = 4 * GMAX * DMAX * 4;
  constexpr int V_BYTES = STAGE_V ? 4 * 32 * VROW * (int)sizeof(C) : 0;
  __shared__ __align__(16) float s_q[GMAX][DMAX];  // this block's query heads, pre-scaled
  __shared__ float s_p[4][GMAX][32];             // each warp's probabilities of its 32 keys
  __shared__ float s_m[4][GMAX], s_l[4][GMAX];
  __shared__ __align__(16) unsigned char s_big[O_BYTES > V_BYTES ? O_BYTES : V_BYTES];
  float(*s_o)[GMAX][DMAX] = reinterpret_cast<float(*)[GMAX][DMAX]>(s_big);  // [4][GMAX][DMAX], after the loop
  C(*s_v)[32][VROW] = reinterpret_cast<C(*)[32][VROW]>(s_big);              // [4][32][VROW], in the loop
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = H / KH, chunks = div_up(group, GMAX);
  const int kh = blockIdx.y / chunks, h0 = kh * group + (blockIdx.y % chunks) * GMAX;
  const int G = min(GMAX, kh * group + group - h0);
  const int t = st.tokens[blockIdx.x], seq = st.token_seq[t], pos = st.positions[t];
  const int* table = st.block_tables + (size_t)seq * st.max_blocks;
  const int kv_dim = KH * D, q_dim = H * D, d0 = lane * EPL;

  // this split's share of the visible positions [first, pos]
  const int first = window > 0 ? max(0, pos - window + 1) : 0;
  const int per = div_up(pos - first + 1, splits);
  const int lo = first + blockIdx.z * per, hi = min(pos + 1, lo + per);

  // unrolled to the block's 128 threads: every query load in flight before the first store
#pragma unroll
  for (int i0 = 0; i0 < GMAX * DMAX; i0 += 128) {
    const int i = i0 + threadIdx.x, g = i / DMAX, d = i % DMAX;
    s_q[g][d] = (g < G && d < D) ? to_f(q[(size_t)t * q_dim + (h0 + g) * D + d]) * scale : 0.f;
  }
  __syncthreads();

  float acc[GMAX][EPL], m[GMAX], l[GMAX];
#pragma unroll
  for (int g = 0; g < GMAX; g++) {
    m[g] = neg_inf(), l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < EPL; e++) acc[g][e] = 0.f;
  }

  for (int base = lo + warp * 32; base < hi; base += 4 * 32) {
    // scores of this lane's key against every head
    const int j = base + lane;
    const bool valid = j < hi;
    float s[GMAX];
#pragma unroll
    for (int g = 0; g < GMAX; g++) s[g] = 0.f;
    if (valid) {
      const size_t row = (size_t)kv_slot(table, j, st.block_size) * kv_dim + kh * D;
      const C* kp = kc + row;
      if constexpr (STAGE_V) {  // this key's V row into shared memory, 8 values a copy (D is a multiple of 8)
        using Copy = typename Copy8<sizeof(C)>::type;
#pragma unroll
        for (int d = 0; d < DMAX; d += 8) {
          if (d >= D) break;
          *(Copy*)&s_v[warp][lane][d] = *(const Copy*)(vc + row + d);
        }
      }
      // unrolled to the compile-time bound so every 16-byte load of the key row is in
      // flight at once (a loop to the runtime D waits on each in turn)
#pragma unroll
      for (int d = 0; d < DMAX; d += 8) {
        if (d >= D) break;
        float k8[8];
        load8(kp + d, kv_scale, k8);
#pragma unroll
        for (int g = 0; g < GMAX; g++) {
          if (g >= G) break;
#pragma unroll
          for (int e = 0; e < 8; e++) s[g] += s_q[g][d + e] * k8[e];
        }
      }
    }
    // online softmax over the 32 keys (lane 0's key is always visible: the max is finite)
#pragma unroll
    for (int g = 0; g < GMAX; g++) {
      if (g >= G) break;
      const float mn = fmaxf(m[g], warp_max(valid ? s[g] : neg_inf()));
      const float corr = expf(m[g] - mn), p = valid ? expf(s[g] - mn) : 0.f;
      l[g] = l[g] * corr + warp_sum(p);
#pragma unroll
      for (int e = 0; e < EPL; e++) acc[g][e] *= corr;
      m[g] = mn;
      s_p[warp][g][lane] = p;
    }
    __syncwarp();
    const int nk = min(32, hi - base);
    if constexpr (STAGE_V) {  // P V from the staged rows
      for (int jj = 0; jj < nk; jj++) {
        float v[EPL];
#pragma unroll
        for (int e = 0; e < EPL; e++) v[e] = d0 + e < D ? to_f(s_v[warp][jj][d0 + e]) * kv_scale : 0.f;
#pragma unroll
        for (int g = 0; g < GMAX; g++) {
          if (g >= G) break;
          const float p = s_p[warp][g][jj];
#pragma unroll
          for (int e = 0; e < EPL; e++) acc[g][e] += p * v[e];
        }
      }
      __syncwarp();  // the next chunk overwrites s_v and s_p
      continue;
    }
    // P V: each lane its output dims, over the chunk's keys, VU keys' rows loaded
    // before any is used (independent loads in flight instead of one round trip per key)
    constexpr int VU = 8;
    for (int jj0 = 0; jj0 < nk; jj0 += VU) {
      float v[VU][EPL];
#pragma unroll
      for (int u = 0; u < VU; u++) {
        const bool in = jj0 + u < nk;
        const size_t row = in ? (size_t)kv_slot(table, base + jj0 + u, st.block_size) * kv_dim + kh * D + d0 : 0;
#pragma unroll
        for (int e = 0; e < EPL; e++) v[u][e] = in && d0 + e < D ? to_f(vc[row + e]) * kv_scale : 0.f;
      }
#pragma unroll
      for (int u = 0; u < VU; u++) {
#pragma unroll
        for (int g = 0; g < GMAX; g++) {
          if (g >= G) break;
          const float p = jj0 + u < nk ? s_p[warp][g][jj0 + u] : 0.f;
#pragma unroll
          for (int e = 0; e < EPL; e++) acc[g][e] += p * v[u][e];
        }
      }
    }
    __syncwarp();  // the next chunk overwrites s_p
  }

  // merge the 4 warps (s_o shares memory with the staged V rows other warps may still read)
  if constexpr (STAGE_V) __syncthreads();
#pragma unroll
  for (int g = 0; g < GMAX; g++) {
    if (lane == 0) s_m[warp][g] = m[g], s_l[warp][g] = l[g];
#pragma unroll
    for (int e = 0; e < EPL; e++) s_o[warp][g][d0 + e] = acc[g][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += blockDim.x) {
    const int g = i / D, d = i % D;
    float M = neg_inf();
    for (int w = 0; w < 4; w++) M = fmaxf(M, s_m[w][g]);
    float L = 0.f, O = 0.f;
    for (int w = 0; w < 4; w++) {
      const float f = s_m[w][g] == neg_inf() ? 0.f : expf(s_m[w][g] - M);
      L += s_l[w][g] * f;
      O += s_o[w][g][d] * f;
    }
    const int h = h0 + g;
    if (splits == 1) {
      out[(size_t)t * q_dim + h * D + d] = from_f<T>(O / L);
    } else {  // unnormalized partial: part_o [n, H, splits, D], part_ml [n, H, splits, 2]
      const size_t p = ((size_t)blockIdx.x * H + h) * splits + blockIdx.z;
      part_o[p * D + d] = O;
      if (d == 0) part_ml[p * 2] = M, part_ml[p * 2 + 1] = L;
    }
  }
}

// Merges the splits of attn_decode: out[t, h] = sum_s O_s e^(M_s - M) / sum_s L_s e^(M_s - M).
// grid (n, H), block 128 over D.
template <typename T>
__device__ void attn_combine(T* out, const float* part_o, const float* part_ml, const int* tokens, int H, int D,
                             int splits) {
  const int i = blockIdx.x, h = blockIdx.y, t = tokens[i];
  const size_t p0 = ((size_t)i * H + h) * splits;
  // each split's (max, sum) and weight read once, all loads in flight (splits <= SPLITS_MAX)
  float ms[SPLITS_MAX], ls[SPLITS_MAX];
#pragma unroll
  for (int s = 0; s < SPLITS_MAX; s++) {
    ms[s] = s < splits ? part_ml[(p0 + s) * 2] : neg_inf();
    ls[s] = s < splits ? part_ml[(p0 + s) * 2 + 1] : 0.f;
  }
  float M = neg_inf();
#pragma unroll
  for (int s = 0; s < SPLITS_MAX; s++) M = fmaxf(M, ms[s]);
  float L = 0.f;
#pragma unroll
  for (int s = 0; s < SPLITS_MAX; s++) {
    ms[s] = ms[s] == neg_inf() ? 0.f : expf(ms[s] - M);  // now the split's weight
    L += ls[s] * ms[s];
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float O = 0.f;
#pragma unroll
    for (int s = 0; s < SPLITS_MAX; s++)
      if (s < splits) O += part_o[(p0 + s) * D + d] * ms[s];
    out[(size_t)t * H * D + h * D + d] = from_f<T>(O / L);
  }
}

#define DECODE_KERNEL(NAME, T, C, DM, STAGE)                                                                       \
  extern "C" __global__ void __launch_bounds__(128) NAME(                                                          \
      T* out, float* part_o, float* part_ml, const T* q, const C* kc, const C* vc, const int* tokens,              \
      const int* token_seq, const int* positions, const int* block_tables, int max_blocks, int block_size, int H,  \
      int KH, int D, float scale, int window, int splits, float kv_scale) {                                        \
    pdl_wait(), pdl_trigger();                                                                                     \
    AttnStep st{tokens, token_seq, positions, block_tables, max_blocks, block_size};                               \
    attn_decode<T, C, DM, STAGE>(out, part_o, part_ml, q, kc, vc, st, H, KH, D, scale, window, splits, kv_scale);  \
  }                                                                                                                \
  LLMRT_EXPORT(NAME)
#define DECODE(S, T, C, DM) DECODE_KERNEL(attn_decode_##S##_d##DM, T, C, DM, false)
// staged V: 16-bit and fp8 caches, head sizes up to 128 (its rows must fit shared memory)
#define DECODE_SV(S, T, C) DECODE_KERNEL(attn_decode_sv_##S##_d64, T, C, 64, true) DECODE_KERNEL(attn_decode_sv_##S##_d128, T, C, 128, true)

// head sizes up to 128 for every pair; 256 (rare in the Llama family) for the plain types
#define DECODE_ALL_D(S, T, C) DECODE(S, T, C, 64) DECODE(S, T, C, 128)

#define COMBINE(S, T)                                                                                              \
  extern "C" __global__ void attn_combine_##S(T* out, const float* part_o, const float* part_ml, const int* tokens, \
                                              int H, int D, int splits) {                                          \
    pdl_wait(), pdl_trigger();                                                                                     \
    attn_combine<T>(out, part_o, part_ml, tokens, H, D, splits);                                                   \
  }                                                                                                                \
  LLMRT_EXPORT(attn_combine_##S)

// every (activation, cache) pair of dtypes.ts KV_PAIRS
DECODE_ALL_D(f32, float, float)
DECODE_ALL_D(f32_bf16, float, bf16)
DECODE_ALL_D(f32_f16, float, f16)
DECODE_ALL_D(bf16, bf16, bf16)
DECODE_ALL_D(bf16_fp8, bf16, fp8)
DECODE_ALL_D(f16, f16, f16)
DECODE_ALL_D(f16_fp8, f16, fp8)
DECODE_SV(f32_bf16, float, bf16)
DECODE_SV(f32_f16, float, f16)
DECODE_SV(bf16, bf16, bf16)
DECODE_SV(bf16_fp8, bf16, fp8)
DECODE_SV(f16, f16, f16)
DECODE_SV(f16_fp8, f16, fp8)
DECODE(f32, float, float, 256)
DECODE(bf16, bf16, bf16, 256)
DECODE(f16, f16, f16, 256)
COMBINE(f32, float)
COMBINE(bf16, bf16)
COMBINE(f16, f16)

// RoPE and the paged KV write: the plain `rope` and `kv_write` ops, and the front half
// of the fused `attention_qkv` op (optional q/k RMSNorm, RoPE, K/V into their cache
// slots) in one pass over the packed qkv rows.
// Semantics: rope, kvWrite (ops.ts) and attentionQkv (fused.ts).
//
// The KV cache of a layer is K [slots, kvHeads*D] and V [slots, kvHeads*D] of type C
// (the activation type, or fp8 e4m3 with `kv_scale`: stored = value / kv_scale).
// The rotation angle is computed in double, as the reference does: at position 4096
// a float angle would be off by ~2e-4 rad.
#include "common.cuh"

// Which two dims of a head rotate together as pair i (ropePair in reference/rope.ts).
__device__ __forceinline__ void rope_pair(int i, int rot_dim, int interleaved, int& a, int& b) {
  if (interleaved) a = 2 * i, b = 2 * i + 1;
  else a = i, b = i + rot_dim / 2;
}

// Plain rope: out [T, cols] = x rotated per head of D dims at positions[t]. In place OK.
// grid (T), block 128: threads over (head, pair).
template <typename T>
__device__ void rope(T* out, const T* x, const int* positions, const float* inv_freq, int cols, int D, int rot_dim,
                     int interleaved) {
  const int t = blockIdx.x;
  const int heads = cols / D, half = rot_dim / 2;
  const T* xr = x + (size_t)t * cols;
  T* o = out + (size_t)t * cols;
  if (o != xr)  // dims past rot_dim (partial rotary) pass through
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
      if (i % D >= rot_dim) o[i] = xr[i];
  const double pos = positions[t];
  for (int w = threadIdx.x; w < heads * half; w += blockDim.x) {
    const int h = w / half, i = w % half;
    int a, b;
    rope_pair(i, rot_dim, interleaved, a, b);
    double s, c;
    sincos(pos * (double)inv_freq[i], &s, &c);
    const float x0 = to_f(xr[h * D + a]), x1 = to_f(xr[h * D + b]);
    o[h * D + a] = from_f<T>((float)(x0 * c - x1 * s));
    o[h * D + b] = from_f<T>((float)(x0 * s + x1 * c));
  }
}

// Plain kv_write: cache rows slots[t] = k[t], v[t]   k, v [T, kv_dim]
template <typename T, typename C>
__device__ void kv_write(C* kc, C* vc, const T* k, const T* v, const int* slots, int kv_dim, float kv_scale) {
  const int t = blockIdx.x;
  const size_t dst = (size_t)slots[t] * kv_dim, src = (size_t)t * kv_dim;
  const float inv = 1.f / kv_scale;
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    kc[dst + i] = from_f<C>(to_f(k[src + i]) * inv);
    vc[dst + i] = from_f<C>(to_f(v[src + i]) * inv);
  }
}

// Fused front of attention_qkv. qkv [T, qDim + 2*kvDim] = q | k | v; writes
// q_rot [T, qDim] (normed, rotated) and the K/V cache rows slots[t].
// grid (T, ceil((H + 2*KH) / 4)), block 128 = 4 warps; warp w of block y takes unit
// u = 4y + w: q heads, then k heads, then v heads (copied). A whole head sits in one
// warp's shared memory, so the norm's sum and the rotation's pairs see all of it; the
// block first fills a cos/sin table for the token's position (rot_dim/2 angles, in
// double) that its warps share. Decode steps are one token: units in separate blocks
// keep every head's loads in flight at once. D <= 256.
template <typename T, typename C>
__device__ void qkv_rope_kv(T* q_rot, C* kc, C* vc, const T* qkv, const int* positions, const int* slots,
                            const float* inv_freq, const float* q_norm, const float* k_norm, int H, int KH, int D,
                            int rot_dim, int interleaved, float eps, float kv_scale) {
  __shared__ float head[4][256];
  __shared__ double cos_t[128], sin_t[128];
  const int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int q_dim = H * D, kv_dim = KH * D, half = rot_dim / 2;
  const T* row = qkv + (size_t)t * (q_dim + 2 * kv_dim);
  const size_t slot = (size_t)slots[t];
  const float inv_kv = 1.f / kv_scale;
  const int u = blockIdx.y * 4 + warp;
  const bool is_v = u >= H + KH;
  if (blockIdx.y * 4 < H + KH) {  // some warp of this block rotates: fill the table
    const double pos = positions[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      double sn, cs;
      sincos(pos * (double)inv_freq[i], &sn, &cs);
      cos_t[i] = cs, sin_t[i] = sn;
    }
  }
  __syncthreads();
  if (u >= H + 2 * KH) return;
  if (is_v) {
    const int h = u - H - KH;
    const T* src = row + q_dim + kv_dim + h * D;
#pragma unroll
    for (int d0 = 0; d0 < 256; d0 += 32)
      if (d0 + lane < D) vc[slot * kv_dim + h * D + d0 + lane] = from_f<C>(to_f(src[d0 + lane]) * inv_kv);
    return;
  }
  const bool is_q = u < H;
  const int h = is_q ? u : u - H;
  const T* src = is_q ? row + h * D : row + q_dim + h * D;
  const float* nw = is_q ? q_norm : k_norm;
  float* sh = head[warp];
  float ss = 0.f;
  // unrolled to D's bound (256): the head's loads in flight together
#pragma unroll
  for (int d0 = 0; d0 < 256; d0 += 32) {
    if (d0 + lane >= D) break;
    const float v = to_f(src[d0 + lane]);
    sh[d0 + lane] = v;
    ss += v * v;
  }
  if (nw) {  // per-head RMSNorm (Qwen3)
    const float inv = 1.f / sqrtf(warp_sum(ss) / D + eps);
    for (int d = lane; d < D; d += 32) sh[d] = nw[d] * (inv * sh[d]);
  }
  __syncwarp();
  // destination: a q_rot row, or this token's K cache row
  T* qo = q_rot + (size_t)t * q_dim + h * D;
  C* ko = kc + slot * kv_dim + h * D;
  for (int d = lane; d < D; d += 32) {
    if (d < rot_dim) continue;
    if (is_q) qo[d] = from_f<T>(sh[d]);
    else ko[d] = from_f<C>(sh[d] * inv_kv);
  }
  for (int i = lane; i < half; i += 32) {
    int a, b;
    rope_pair(i, rot_dim, interleaved, a, b);
    const double c = cos_t[i], sn = sin_t[i];
    const float x0 = sh[a], x1 = sh[b];
    const float ra = (float)(x0 * c - x1 * sn), rb = (float)(x0 * sn + x1 * c);
    if (is_q) qo[a] = from_f<T>(ra), qo[b] = from_f<T>(rb);
    else ko[a] = from_f<C>(ra * inv_kv), ko[b] = from_f<C>(rb * inv_kv);
  }
}

#define ROPE(S, T)                                                                                              \
  extern "C" __global__ void rope_##S(T* out, const T* x, const int* positions, const float* inv_freq, int cols, \
                                      int D, int rot_dim, int interleaved) {                                     \
    pdl_wait(), pdl_trigger();                                                                                         \
    rope<T>(out, x, positions, inv_freq, cols, D, rot_dim, interleaved);                                         \
  }                                                                                                              \
  LLMRT_EXPORT(rope_##S)

#define KV(S, T, C)                                                                                                  \
  extern "C" __global__ void kv_write_##S(C* kc, C* vc, const T* k, const T* v, const int* slots, int kv_dim,        \
                                          float kv_scale) {                                                          \
    pdl_wait(), pdl_trigger();                                                                                         \
    kv_write<T, C>(kc, vc, k, v, slots, kv_dim, kv_scale);                                                           \
  }                                                                                                                  \
  extern "C" __global__ void qkv_rope_kv_##S(T* q_rot, C* kc, C* vc, const T* qkv, const int* positions,             \
                                             const int* slots, const float* inv_freq, const float* q_norm,           \
                                             const float* k_norm, int H, int KH, int D, int rot_dim, int interleaved, \
                                             float eps, float kv_scale) {                                            \
    pdl_wait(), pdl_trigger();                                                                                       \
    qkv_rope_kv<T, C>(q_rot, kc, vc, qkv, positions, slots, inv_freq, q_norm, k_norm, H, KH, D, rot_dim, interleaved, \
                      eps, kv_scale);                                                                                \
  }                                                                                                                  \
  LLMRT_EXPORT(kv_write_##S)                                                                                         \
  LLMRT_EXPORT(qkv_rope_kv_##S)

ROPE(f32, float)
ROPE(bf16, bf16)
ROPE(f16, f16)
// every (activation, cache) pair of dtypes.ts KV_PAIRS
KV(f32, float, float)
KV(f32_bf16, float, bf16)
KV(f32_f16, float, f16)
KV(bf16, bf16, bf16)
KV(bf16_fp8, bf16, fp8)
KV(f16, f16, f16)
KV(f16_fp8, f16, fp8)

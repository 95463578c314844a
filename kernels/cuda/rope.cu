#include "kernels/cuda/rope.h"

#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;
using detail::f16;

constexpr int kWarpsPerBlock = 4;

// Cache-less instantiation marker: no k/v cache write.
struct NoCache {};

// One warp per (token, head): heads [0, num_heads) are q heads, the rest k heads. A k
// head's warp also writes that head of k (rotated) and v to the cache when T is a real
// type. Lanes walk the rotary pairs i, then the pass-through tail.
template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    RopeKernel(float* q, int64_t q_stride, int num_heads, float* k, const float* v,
               int64_t kv_stride, int num_kv_heads, int64_t num_tokens, int head_dim, int half,
               const int32_t* positions, const float* inv_freq, const int32_t* slots,
               T* k_cache, T* v_cache) {
  const int heads = num_heads + num_kv_heads;
  const int64_t w = blockIdx.x * int64_t{kWarpsPerBlock} + (threadIdx.x >> 5);
  if (w >= num_tokens * heads) return;
  const int lane = threadIdx.x & 31;
  const int64_t t = w / heads;
  const int h = static_cast<int>(w - t * heads);
  const bool is_q = h < num_heads;
  const int kvh = h - num_heads;
  float* x = is_q ? q + t * q_stride + static_cast<int64_t>(h) * head_dim
                  : k + t * kv_stride + static_cast<int64_t>(kvh) * head_dim;
  constexpr bool kWrite = !std::is_same_v<T, NoCache>;
  T* kc = nullptr;
  T* vc = nullptr;
  if constexpr (kWrite) {
    if (!is_q) {
      const int64_t row = static_cast<int64_t>(slots[t]) * num_kv_heads * head_dim +
                          static_cast<int64_t>(kvh) * head_dim;
      kc = k_cache + row;
      vc = v_cache + row;
    }
  }
  if (half > 0) {
    const float pos = static_cast<float>(positions[t]);
    for (int i = lane; i < half; i += 32) {
      float s, c;
      sincosf(pos * inv_freq[i], &s, &c);
      const float x1 = x[i], x2 = x[i + half];
      const float y1 = x1 * c - x2 * s;
      const float y2 = x2 * c + x1 * s;
      x[i] = y1;
      x[i + half] = y2;
      if constexpr (kWrite) {
        if (!is_q) {
          kc[i] = detail::FromF32<T>(y1);
          kc[i + half] = detail::FromF32<T>(y2);
        }
      }
    }
  }
  if constexpr (kWrite) {
    if (!is_q) {
      for (int d = 2 * half + lane; d < head_dim; d += 32) kc[d] = detail::FromF32<T>(x[d]);
      const float* vr = v + t * kv_stride + static_cast<int64_t>(kvh) * head_dim;
      for (int d = lane; d < head_dim; d += 32) vc[d] = detail::FromF32<T>(vr[d]);
    }
  }
}

template <typename T>
cudaError_t Rope(float* q, int64_t q_stride, int num_heads, float* k, const float* v,
                 int64_t kv_stride, int num_kv_heads, int64_t num_tokens, int head_dim,
                 int rotary_dim, const int32_t* positions, const float* inv_freq,
                 const int32_t* slots, T* k_cache, T* v_cache, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (num_heads < 0 || num_kv_heads < 0 || head_dim <= 0 || rotary_dim > head_dim) {
    return cudaErrorInvalidValue;
  }
  const int half = rotary_dim >= 2 ? rotary_dim / 2 : 0;
  const int64_t warps = num_tokens * (num_heads + num_kv_heads);
  if (warps == 0) return cudaSuccess;
  RopeKernel<T><<<detail::CeilDiv(warps, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      q, q_stride, num_heads, k, v, kv_stride, num_kv_heads, num_tokens, head_dim, half,
      positions, inv_freq, slots, k_cache, v_cache);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchRopeQk(float* q, int64_t q_stride, int num_heads, float* k, int64_t k_stride,
                         int num_kv_heads, int64_t num_tokens, int head_dim, int rotary_dim,
                         const int32_t* positions, const float* inv_freq, cudaStream_t stream) {
  if (rotary_dim < 2) return cudaSuccess;
  // k and v share one stride in the kernel; v is unused here, so k's stride serves.
  // With no k heads, k_stride may be anything: use q's.
  return Rope<NoCache>(q, q_stride, num_heads, k, nullptr, num_kv_heads > 0 ? k_stride : q_stride,
                       num_kv_heads, num_tokens, head_dim, rotary_dim, positions, inv_freq,
                       nullptr, nullptr, nullptr, stream);
}

cudaError_t LaunchRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads,
                       int head_dim, int rotary_dim, const int32_t* positions,
                       const float* inv_freq, cudaStream_t stream) {
  return LaunchRopeQk(x, row_stride, num_heads, nullptr, 0, 0, num_tokens, head_dim, rotary_dim,
                      positions, inv_freq, stream);
}

#define MOE_ROPE_KV_DEF(T)                                                                     \
  cudaError_t LaunchRopeQkWriteKv(float* q, int64_t q_stride, int num_heads, float* k,         \
                                  const float* v, int64_t kv_stride, int num_kv_heads,         \
                                  int64_t num_tokens, int head_dim, int rotary_dim,            \
                                  const int32_t* positions, const float* inv_freq,             \
                                  const int32_t* slots, T* k_cache, T* v_cache,                \
                                  cudaStream_t stream) {                                       \
    return Rope<T>(q, q_stride, num_heads, k, v, kv_stride, num_kv_heads, num_tokens,          \
                   head_dim, rotary_dim, positions, inv_freq, slots, k_cache, v_cache, stream); \
  }
MOE_ROPE_KV_DEF(bf16)
MOE_ROPE_KV_DEF(f16)
MOE_ROPE_KV_DEF(float)
#undef MOE_ROPE_KV_DEF

}  // namespace moe::kernels::cuda

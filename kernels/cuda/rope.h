// Rotary position embedding on the GPU, rotate-half (GPT-NeoX) style, in place, fp32:
//   angle = float(position) * inv_freq[i];  x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin
// with x1 / x2 the halves of each head's first rotary_dim elements (the rest pass
// through). cos/sin are the accurate (non-intrinsic) fp32 sincosf on the fp32 angle (no
// double, no powf in the kernels). inv_freq should be the CPU kernel's RopeInvFreq(),
// uploaded once, so both backends rotate identically.
//
// Work split: one warp per (token, head) pair, 4 warps a block, so even a single decode
// token spreads over (num_heads + num_kv_heads) / 4 blocks.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// x: device [num_tokens, row_stride] fp32 with num_heads heads of head_dim from column 0;
// positions: device [num_tokens]; inv_freq: device [rotary_dim / 2].
cudaError_t LaunchRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads,
                       int head_dim, int rotary_dim, const int32_t* positions,
                       const float* inv_freq, cudaStream_t stream);

// q and k of one projection in one launch (the same positions): q has num_heads heads,
// k num_kv_heads, each at column 0 of its own strided buffer.
cudaError_t LaunchRopeQk(float* q, int64_t q_stride, int num_heads, float* k, int64_t k_stride,
                         int num_kv_heads, int64_t num_tokens, int head_dim, int rotary_dim,
                         const int32_t* positions, const float* inv_freq, cudaStream_t stream);

// LaunchRopeQk followed by LaunchWriteKvCache (paged_attention.h), in one launch:
// rotates q and k in place (q row stride q_stride; k and v share row stride kv_stride,
// num_kv_heads heads each), then stores the rotated k row and the v row of token t, as
// the cache's type, at cache row slots[t] (row = physical block * block_size + offset,
// num_kv_heads * head_dim elements). rotary_dim < 2 rotates nothing and only writes the
// cache. The fp32 k left in place equals what LaunchRopeQk leaves. q, k and v must not
// overlap the caches. Overloads for bf16, __half and float caches.
#define MOE_ROPE_KV_DECL(T)                                                                    \
  cudaError_t LaunchRopeQkWriteKv(float* q, int64_t q_stride, int num_heads, float* k,         \
                                  const float* v, int64_t kv_stride, int num_kv_heads,         \
                                  int64_t num_tokens, int head_dim, int rotary_dim,            \
                                  const int32_t* positions, const float* inv_freq,             \
                                  const int32_t* slots, T* k_cache, T* v_cache,                \
                                  cudaStream_t stream);
MOE_ROPE_KV_DECL(__nv_bfloat16)
MOE_ROPE_KV_DECL(__half)
MOE_ROPE_KV_DECL(float)
#undef MOE_ROPE_KV_DECL

}  // namespace moe::kernels::cuda

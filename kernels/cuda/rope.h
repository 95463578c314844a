// Rotary position embedding on the GPU, rotate-half (GPT-NeoX) style, in place, fp32:
//   angle = float(position) * inv_freq[i];  x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin
// with x1 / x2 the halves of each head's first rotary_dim elements (the rest pass
// through). cos/sin are the accurate (non-intrinsic) fp32 functions. inv_freq should be
// the CPU kernel's RopeInvFreq(), uploaded once, so both backends rotate identically.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

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

}  // namespace moe::kernels::cuda

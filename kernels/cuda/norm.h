// RMSNorm on the GPU, as Hugging Face transformers computes it in fp32:
//   out = weight * (x * rsqrt(mean(x^2) + eps))
// over rows of length n; weight is bf16, arithmetic fp32 (the sum of squares too, reduced
// in a tree, so long rows lose no more than a few ulps).
//
// Thread safety: launchers only enqueue work on `stream`; buffers are caller-owned device
// memory and must not be written concurrently by other work.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// out[r, :] = RmsNorm(x[r, :]); x and out contiguous [rows, n]. out may alias x only
// when both are fp32.
// Overloads for weights W and outputs Out each of bf16, fp16 (__half) or fp32.
#define MOE_NORM_DECLS(W, Out)                                                                \
  cudaError_t LaunchRmsNorm(const float* x, int64_t rows, int n, const W* weight, float eps,   \
                            Out* out, cudaStream_t stream);                                   \
  /* Fused residual add + RMSNorm: residual += delta (when delta is not null), then   */      \
  /* out = RmsNorm(residual). out must not alias residual or delta.                   */      \
  cudaError_t LaunchAddRmsNorm(float* residual, const float* delta, int64_t rows, int n,      \
                               const W* weight, float eps, Out* out, cudaStream_t stream);
#define MOE_NORM_DECLS_W(W)                                                                   \
  MOE_NORM_DECLS(W, __nv_bfloat16)                                                            \
  MOE_NORM_DECLS(W, __half)                                                                   \
  MOE_NORM_DECLS(W, float)                                                                    \
  /* In-place RMSNorm of `groups` consecutive rows of length n inside each token's row  */    \
  /* of a strided buffer: row (t, g) starts at x + t * token_stride + g * n. Per-head   */    \
  /* q/k norm is groups = heads, n = head_dim; whole-projection q/k norm is groups = 1, */    \
  /* n = heads * head_dim. weight has n elements.                                       */    \
  cudaError_t LaunchRmsNormGroups(float* x, int64_t num_tokens, int64_t token_stride,         \
                                  int groups, int n, const W* weight, float eps,              \
                                  cudaStream_t stream);
MOE_NORM_DECLS_W(__nv_bfloat16)
MOE_NORM_DECLS_W(__half)
MOE_NORM_DECLS_W(float)
#undef MOE_NORM_DECLS_W
#undef MOE_NORM_DECLS

}  // namespace moe::kernels::cuda

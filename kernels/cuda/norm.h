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

// LaunchMoeCombine (moe_permute.h) into a delta, then LaunchAddRmsNorm(residual, delta,
// ...), as one launch and without the delta buffer: for token t, column c,
//   residual[t, c] += sum_i topk_weight[t*k+i] * expert_out[slot_row[t*k+i], c]
// (the sum from 0 in slot order i = 0..k-1, one fused multiply-add per slot, in fp32 over
// the rows widened to fp32), then out[t, :] = RmsNorm(residual[t, :]) with the reduction
// LaunchAddRmsNorm uses for a 16-byte-aligned delta. Bit-identical to that pair (the
// combine's fp32 store is exact; same norm kernel, same order). expert_out: [*, n] rows
// (fp32, or the model dtype as RunExpertsOutT writes), residual / out: [rows, n].
// Overloads: rows fp32 or T, weight and out T, for T = bf16, fp16, fp32.
#define MOE_COMBINE_NORM_DECL(R, T)                                                           \
  cudaError_t LaunchMoeCombineAddRmsNorm(const R* expert_out, const int32_t* slot_row,        \
                                         const float* topk_weight, int k, float* residual,    \
                                         int64_t rows, int n, const T* weight, float eps,     \
                                         T* out, cudaStream_t stream);
MOE_COMBINE_NORM_DECL(float, __nv_bfloat16)
MOE_COMBINE_NORM_DECL(__nv_bfloat16, __nv_bfloat16)
MOE_COMBINE_NORM_DECL(float, __half)
MOE_COMBINE_NORM_DECL(__half, __half)
MOE_COMBINE_NORM_DECL(float, float)
#undef MOE_COMBINE_NORM_DECL

// MOE_COMBINE_FUSED, read once per process: "0" (or n/f...) keeps the combine and the
// next norm as two launches; default on.
bool MoeCombineNormFusedDefault();

}  // namespace moe::kernels::cuda

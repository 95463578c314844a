// MoE router on the GPU, one warp per token, one launch: softmax over the experts'
// logits (fp32), top-k (descending weight; ties: the lower expert index first, as
// torch.topk), optional renormalisation of the k weights to sum to 1.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

constexpr int kRouterMaxExperts = 512;

// logits: device [num_tokens, num_experts] (num_experts <= kRouterMaxExperts, 1 <= k <=
// num_experts); writes topk_idx / topk_weight: device [num_tokens, k].
cudaError_t LaunchRouterSoftmaxTopK(const float* logits, int64_t num_tokens, int num_experts,
                                    int k, bool renormalize, int32_t* topk_idx,
                                    float* topk_weight, cudaStream_t stream);

}  // namespace moe::kernels::cuda

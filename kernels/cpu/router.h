// MoE router: softmax over all experts' logits (fp32), top-k (ties: the lower expert
// index first, as torch.topk), optional renormalisation of the k weights to sum to 1.
//
// Thread safety: a pure function; parallel over tokens on `pool` (null: serial).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace moe::kernels::cpu {

// logits: [num_tokens, num_experts]. Writes topk_idx / topk_weight: [num_tokens, k], in
// descending weight order.
void RouterSoftmaxTopK(const float* logits, int64_t num_tokens, int num_experts, int k,
                       bool renormalize, int32_t* topk_idx, float* topk_weight,
                       ThreadPool* pool);

}  // namespace moe::kernels::cpu

// Routing and the token permutation of a tiny step (n * k <= kRouterPermuteMaxSlots: decode
// at batch 1..4) in one launch, so the step's MoE layer runs one kernel between the router
// GEMM and the experts instead of two (issue 5: batch 1 is launch-latency bound).
//
// Bit-identical by construction to the two launches it replaces: the routing is
// router_warp.cuh's RouteTokenWarp (what LaunchRouterSoftmaxTopK runs), the permutation
// permute_tiny.cuh's PermuteTinyWarp (what LaunchMoePermute runs for <= 32 slots), so a
// caller may mix fused and unfused steps and the resident and offloaded paths agree.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

constexpr int kRouterPermuteMaxSlots = 32;

// MOE_ROUTER_FUSED, read once per process: "0" (or n/f...) keeps the two launches; default on.
bool RouterPermuteFusedDefault();

// LaunchRouterSoftmaxTopK(logits, num_tokens, num_experts, k, renormalize, topk_idx,
// topk_weight) followed by LaunchMoePermute(topk_idx, num_tokens * k, k, num_experts,
// counts, offsets, row_token, slot_row, active), as one launch. Requires num_tokens * k <=
// kRouterPermuteMaxSlots, num_experts <= 1024 (and the router's own limits); else
// cudaErrorInvalidValue. active may be null (as LaunchMoePermute's).
cudaError_t LaunchRouterTopKPermuteTiny(const float* logits, int64_t num_tokens, int num_experts,
                                        int k, bool renormalize, int32_t* topk_idx,
                                        float* topk_weight, int32_t* counts, int32_t* offsets,
                                        int32_t* row_token, int32_t* slot_row, int32_t* active,
                                        cudaStream_t stream);

// Routing already chosen (a pre-gate's src_idx / src_weight, [num_tokens, k]): copies it
// to topk_idx / topk_weight and permutes it (as LaunchMoePermute), in one launch. Same
// limits as above.
cudaError_t LaunchCopyRoutesPermuteTiny(const int32_t* src_idx, const float* src_weight,
                                        int64_t num_tokens, int num_experts, int k,
                                        int32_t* topk_idx, float* topk_weight, int32_t* counts,
                                        int32_t* offsets, int32_t* row_token, int32_t* slot_row,
                                        int32_t* active, cudaStream_t stream);

}  // namespace moe::kernels::cuda

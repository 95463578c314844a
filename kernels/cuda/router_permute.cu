#include "kernels/cuda/router_permute.h"

#include <cmath>
#include <cstdlib>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/permute_tiny.cuh"
#include "kernels/cuda/router.h"
#include "kernels/cuda/router_warp.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kMaxPermuteExperts = 1024;  // LaunchMoePermute's limit

// One block, one warp per token: warp t routes token t (RouteTokenWarp writes its k picks
// to topk_idx / topk_weight), then, after the block barrier (which orders the block's
// global writes before its later reads), warp 0 permutes topk_idx.
template <int PL>
__global__ void RouterPermuteTinyKernel(const float* logits, int num_tokens, int num_experts,
                                        int k, bool renormalize, int32_t* topk_idx,
                                        float* topk_weight, int32_t* counts, int32_t* offsets,
                                        int32_t* row_token, int32_t* slot_row, int32_t* active) {
  pdl::WaitPredecessor();
  const int t = threadIdx.x >> 5;
  if (t < num_tokens) {
    router_detail::RouteTokenWarp<PL>(logits + static_cast<int64_t>(t) * num_experts, t,
                                      num_experts, k, renormalize, topk_idx, topk_weight);
  }
  __syncthreads();
  if (t == 0) {
    permute_detail::PermuteTinyWarp(topk_idx, num_tokens * k, k, num_experts, counts, offsets,
                                    row_token, slot_row, active);
  }
}

// One warp: copy the given routing, permute it (reading the source: same values).
__global__ void __launch_bounds__(32)
    CopyRoutesPermuteTinyKernel(const int32_t* src_idx, const float* src_weight, int num_slots,
                                int k, int num_experts, int32_t* topk_idx, float* topk_weight,
                                int32_t* counts, int32_t* offsets, int32_t* row_token,
                                int32_t* slot_row, int32_t* active) {
  pdl::WaitPredecessor();
  const int lane = threadIdx.x;
  if (lane < num_slots) {
    topk_idx[lane] = src_idx[lane];
    topk_weight[lane] = src_weight[lane];
  }
  permute_detail::PermuteTinyWarp(src_idx, num_slots, k, num_experts, counts, offsets,
                                  row_token, slot_row, active);
}

bool TinyShapeOk(int64_t num_tokens, int num_experts, int k) {
  return num_tokens >= 0 && k >= 1 && num_experts >= 1 && k <= num_experts &&
         num_experts <= kMaxPermuteExperts && num_experts <= kRouterMaxExperts &&
         num_tokens * k <= kRouterPermuteMaxSlots;
}

}  // namespace

bool RouterPermuteFusedDefault() {
  static const bool on = [] {
    const char* v = std::getenv("MOE_ROUTER_FUSED");
    if (v == nullptr || *v == '\0') return true;
    return !(v[0] == '0' || v[0] == 'n' || v[0] == 'N' || v[0] == 'f' || v[0] == 'F');
  }();
  return on;
}

cudaError_t LaunchRouterTopKPermuteTiny(const float* logits, int64_t num_tokens, int num_experts,
                                        int k, bool renormalize, int32_t* topk_idx,
                                        float* topk_weight, int32_t* counts, int32_t* offsets,
                                        int32_t* row_token, int32_t* slot_row, int32_t* active,
                                        cudaStream_t stream) {
  if (!TinyShapeOk(num_tokens, num_experts, k)) return cudaErrorInvalidValue;
  // No tokens: LaunchRouterSoftmaxTopK does nothing, LaunchMoePermute still writes the
  // (empty) counts / offsets / active list; one warp does the same here.
  const int n = static_cast<int>(num_tokens);
  const unsigned threads = 32u * static_cast<unsigned>(n > 0 ? n : 1);
  const int pl = (num_experts + 31) / 32;
#define MOE_RP_CASE(N)                                                                      \
  return pdl::Launch(RouterPermuteTinyKernel<N>, dim3(1), dim3(threads), 0, stream, logits, n, \
                     num_experts, k, renormalize, topk_idx, topk_weight, counts, offsets,   \
                     row_token, slot_row, active)
  if (pl <= 1) MOE_RP_CASE(1);
  if (pl <= 2) MOE_RP_CASE(2);
  if (pl <= 4) MOE_RP_CASE(4);
  if (pl <= 8) MOE_RP_CASE(8);
  MOE_RP_CASE(kRouterMaxExperts / 32);
#undef MOE_RP_CASE
}

cudaError_t LaunchCopyRoutesPermuteTiny(const int32_t* src_idx, const float* src_weight,
                                        int64_t num_tokens, int num_experts, int k,
                                        int32_t* topk_idx, float* topk_weight, int32_t* counts,
                                        int32_t* offsets, int32_t* row_token, int32_t* slot_row,
                                        int32_t* active, cudaStream_t stream) {
  if (!TinyShapeOk(num_tokens, num_experts, k)) return cudaErrorInvalidValue;
  return pdl::Launch(CopyRoutesPermuteTinyKernel, dim3(1), dim3(32), 0, stream, src_idx,
                     src_weight, static_cast<int>(num_tokens * k), k, num_experts, topk_idx,
                     topk_weight, counts, offsets, row_token, slot_row, active);
}

}  // namespace moe::kernels::cuda

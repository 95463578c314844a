#include "kernels/cuda/router.h"

#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/router_warp.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kWarps = 4;

template <int PL>
__global__ void RouterKernel(const float* logits, int64_t num_tokens, int num_experts, int k,
                             bool renormalize, int32_t* topk_idx, float* topk_weight) {
  const int64_t t = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5);
  if (t >= num_tokens) return;
  router_detail::RouteTokenWarp<PL>(logits + t * num_experts, t, num_experts, k, renormalize,
                                    topk_idx, topk_weight);
}

}  // namespace

cudaError_t LaunchRouterSoftmaxTopK(const float* logits, int64_t num_tokens, int num_experts,
                                    int k, bool renormalize, int32_t* topk_idx,
                                    float* topk_weight, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (num_experts > kRouterMaxExperts || num_experts < 1 || k < 1 || k > num_experts) {
    return cudaErrorInvalidValue;
  }
  const unsigned blocks = detail::CeilDiv(num_tokens, kWarps);
  const int pl = (num_experts + 31) / 32;
#define MOE_ROUTER_CASE(N)                                                              \
  RouterKernel<N><<<blocks, 32 * kWarps, 0, stream>>>(logits, num_tokens, num_experts, k, \
                                                      renormalize, topk_idx, topk_weight)
  if (pl <= 1) {
    MOE_ROUTER_CASE(1);
  } else if (pl <= 2) {
    MOE_ROUTER_CASE(2);
  } else if (pl <= 4) {
    MOE_ROUTER_CASE(4);
  } else if (pl <= 8) {
    MOE_ROUTER_CASE(8);
  } else {
    MOE_ROUTER_CASE(kRouterMaxExperts / 32);
  }
#undef MOE_ROUTER_CASE
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda

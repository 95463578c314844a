#include "kernels/cuda/router.h"

#include <cmath>

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kWarps = 4;

// PL: experts per lane (num_experts <= 32 * PL), so small expert counts iterate less.
template <int PL>
__global__ void RouterKernel(const float* logits, int64_t num_tokens, int num_experts, int k,
                             bool renormalize, int32_t* topk_idx, float* topk_weight) {
  const int lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5);
  if (t >= num_tokens) return;
  const float* l = logits + t * num_experts;
  float p[PL];
  float mx = -INFINITY;
#pragma unroll
  for (int j = 0; j < PL; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? l[e] : -INFINITY;
    mx = fmaxf(mx, p[j]);
  }
  mx = detail::WarpMax(mx);
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < PL; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? expf(p[j] - mx) : 0.f;
    sum += p[j];
  }
  sum = detail::WarpSum(sum);
#pragma unroll
  for (int j = 0; j < PL; ++j) {
    const int e = lane + 32 * j;
    p[j] = e < num_experts ? p[j] / sum : -1.f;  // taken / absent experts: -1
  }
  float chosen = 0.f, total = 0.f;  // lane i < k keeps the i-th pick
  int chosen_idx = 0;
  for (int i = 0; i < k; ++i) {
    float best = -1.f;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int j = 0; j < PL; ++j) {
      const int e = lane + 32 * j;
      if (p[j] > best) {  // strict: within a lane, lower e first
        best = p[j];
        best_e = e;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) {
        best = ob;
        best_e = oe;
      }
    }
#pragma unroll
    for (int j = 0; j < PL; ++j) {
      if (lane + 32 * j == best_e) p[j] = -1.f;
    }
    total += best;
    if (lane == (i & 31)) {
      if (i < 32) {
        chosen = best;
        chosen_idx = best_e;
      }
    }
    if (i >= 32 && lane == 0) {  // k > 32: write directly, renormalised below
      topk_idx[t * k + i] = best_e;
      topk_weight[t * k + i] = best;
    }
  }
  if (k > 32) __syncwarp();
  if (lane < k) {
    topk_idx[t * k + lane] = chosen_idx;
    topk_weight[t * k + lane] = renormalize ? chosen / total : chosen;
  }
  if (k > 32 && renormalize && lane == 0) {
    for (int i = 32; i < k; ++i) topk_weight[t * k + i] /= total;
  }
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

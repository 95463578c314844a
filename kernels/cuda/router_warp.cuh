// The router's per-token routine for one warp (softmax over the experts, top-k with
// ties to the lower index, optional renormalisation), as a device function so that a
// kernel fusing routing with its neighbours picks exactly what router.cu's kernel picks.
#pragma once

#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda::router_detail {

// PL: experts per lane (num_experts <= 32 * PL), so small expert counts iterate less.
template <int PL>
__device__ __forceinline__ void RouteTokenWarp(const float* l, int64_t t, int num_experts, int k,
                                               bool renormalize, int32_t* topk_idx,
                                               float* topk_weight) {
  const int lane = threadIdx.x & 31;
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

}  // namespace moe::kernels::cuda::router_detail

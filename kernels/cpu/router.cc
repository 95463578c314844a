#include "kernels/cpu/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe::kernels::cpu {

void RouterSoftmaxTopK(const float* logits, int64_t num_tokens, int num_experts, int k,
                       bool renormalize, int32_t* topk_idx, float* topk_weight,
                       ThreadPool* pool) {
  ParallelFor(pool, num_tokens, 64, [&](int64_t t0, int64_t t1) {
    std::vector<float> prob(num_experts);
    std::vector<char> taken(num_experts);
    for (int64_t t = t0; t < t1; ++t) {
      const float* l = logits + t * num_experts;
      float mx = -INFINITY;
      for (int e = 0; e < num_experts; ++e) mx = std::max(mx, l[e]);
      float sum = 0;
      for (int e = 0; e < num_experts; ++e) {
        prob[e] = std::exp(l[e] - mx);
        sum += prob[e];
      }
      for (int e = 0; e < num_experts; ++e) prob[e] = prob[e] / sum;
      std::fill(taken.begin(), taken.end(), 0);
      int32_t* idx = topk_idx + t * k;
      float* w = topk_weight + t * k;
      for (int i = 0; i < k; ++i) {
        int best = -1;
        for (int e = 0; e < num_experts; ++e) {
          if (taken[e]) continue;
          if (best < 0 || prob[e] > prob[best]) best = e;  // strict: lower index wins ties
        }
        taken[best] = 1;
        idx[i] = best;
        w[i] = prob[best];
      }
      if (renormalize) {
        float s = 0;
        for (int i = 0; i < k; ++i) s += w[i];
        for (int i = 0; i < k; ++i) w[i] = w[i] / s;
      }
    }
  });
}

}  // namespace moe::kernels::cpu

#include "kernels/cpu/rope.h"

#include <cmath>

namespace moe::kernels::cpu {

std::vector<float> RopeInvFreq(int rotary_dim, double theta, double linear_factor) {
  std::vector<float> inv(rotary_dim / 2);
  const float base = static_cast<float>(theta);
  const float dim = static_cast<float>(rotary_dim);
  const float factor = static_cast<float>(linear_factor);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    float exponent = static_cast<float>(2 * i) / dim;
    float denom = std::pow(base, exponent);
    inv[i] = 1.0f / denom;
    if (factor != 1.0f) inv[i] = inv[i] / factor;
  }
  return inv;
}

void ApplyRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads, int head_dim,
               int rotary_dim, const int32_t* positions, const float* inv_freq,
               ThreadPool* pool) {
  const int half = rotary_dim / 2;
  ParallelFor(pool, num_tokens, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> cs(half), sn(half);
    for (int64_t t = t0; t < t1; ++t) {
      const float pos = static_cast<float>(positions[t]);
      for (int i = 0; i < half; ++i) {
        float angle = pos * inv_freq[i];
        // Evaluated in double and rounded: the correctly rounded fp32 cos/sin.
        cs[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sn[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      float* row = x + t * row_stride;
      for (int h = 0; h < num_heads; ++h) {
        float* v = row + static_cast<int64_t>(h) * head_dim;
        for (int i = 0; i < half; ++i) {
          float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * cs[i] - x2 * sn[i];
          v[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  });
}

}  // namespace moe::kernels::cpu

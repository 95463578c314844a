#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>

namespace moe::kernels::cpu {

float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void Clamp(float* x, int64_t n, float c, ThreadPool* pool) {
  ParallelFor(pool, n, 1 << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = std::min(std::max(x[i], -c), c);
  });
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out, ThreadPool* pool) {
  ParallelFor(pool, n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float g = gate[i];
      out[i] = (g / (1.0f + std::exp(-g))) * up[i];
    }
  });
}

void SigmoidGatedAdd(float* out, const float* gate_logit, const float* shared, int64_t rows,
                     int64_t n, ThreadPool* pool) {
  ParallelFor(pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)),
              [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                  float s = Sigmoid(gate_logit[r]);
                  float* o = out + r * n;
                  const float* x = shared + r * n;
                  for (int64_t i = 0; i < n; ++i) o[i] += s * x[i];
                }
              });
}

void ScaledAdd(float* out, const float* x, float scale, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] += x[i] * scale;
}

}  // namespace moe::kernels::cpu

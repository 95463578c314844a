#include "kernels/cpu/rms_norm.h"

#include <cmath>

namespace moe::kernels::cpu {
namespace {

inline void NormRow(const float* x, int64_t n, const void* weight, DType w_dtype, float eps,
                    float* out) {
  // The mean is accumulated in double: torch's fp32 mean is a cascaded sum, accurate to
  // about an ulp, which a plain fp32 running sum is not for long rows.
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  float variance = static_cast<float>(sum / static_cast<double>(n));
  float r = 1.0f / std::sqrt(variance + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = LoadAsF32(weight, w_dtype, i) * (x[i] * r);
}

}  // namespace

void RmsNorm(const float* x, int64_t rows, int64_t n, const void* weight, DType w_dtype,
             float eps, float* out, ThreadPool* pool) {
  ParallelFor(pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)),
              [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) NormRow(x + r * n, n, weight, w_dtype, eps, out + r * n);
              });
}

void AddRmsNorm(float* residual, const float* delta, int64_t rows, int64_t n,
                const void* weight, DType w_dtype, float eps, float* out, ThreadPool* pool) {
  ParallelFor(pool, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)),
              [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                  float* x = residual + r * n;
                  if (delta != nullptr) {
                    const float* d = delta + r * n;
                    for (int64_t i = 0; i < n; ++i) x[i] += d[i];
                  }
                  NormRow(x, n, weight, w_dtype, eps, out + r * n);
                }
              });
}

}  // namespace moe::kernels::cpu

// The passes over one row of logits that sampling is built from, written so that each
// is one streaming pass the compiler (or SSE, where available) vectorises: max and NaN
// detection, the first index of a value, exp weights, log-sum-exp, and the top-n
// entries. Used by Sampler; exposed for its tests and benchmarks.
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace moe::engine::sampling {

// exp(x) for x <= 0 (as x - max), branch-free so loops over it vectorise: 2^k · e^r with
// k = round(x / ln2), |r| <= ln2 / 2, e^r by its degree-6 Taylor polynomial (relative
// error < 2e-7). Below -87 (and at -inf) it returns exactly 0, so masked tokens keep zero
// weight; ExpNonPositive(0) is exactly 1.
inline float ExpNonPositive(float x) {
  const float xc = x < -87.f ? -87.f : x;
  // Round to nearest by the 1.5 * 2^23 trick (no libm call, so the loop vectorises).
  const float k = (xc * 1.44269504f + 12582912.f) - 12582912.f;
  const float r = (xc - k * 0.693145752f) - k * 1.42860677e-6f;  // ln2 split hi + lo
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x < -87.f ? 0.f : p * scale;
}

// The largest non-NaN value of x[0, n) (-inf when there is none) and whether any is NaN.
void MaxAndNan(const float* x, int64_t n, float* max, bool* any_nan);

// The first i with x[i] == v (0 when there is none).
int32_t FirstIndexOf(const float* x, int64_t n, float v);

// w[i] = ExpNonPositive((x[i] - m) * scale) for every i; returns their sum (in double,
// summed in index order over 4 interleaved lanes).
double ExpWeights(const float* x, float m, float scale, int64_t n, float* w);

// log(sum_i exp(x[i] - m)) + m, in one pass that stores nothing; m must be the max.
float LogSumExp(const float* x, float m, int64_t n);

// The `count` most likely entries as (value, id), most likely first, equal values by
// lower id. One pass; blocks whose values cannot enter the list are rejected by one
// vector compare. `count` <= n.
void TopN(const float* x, int64_t n, int count, std::vector<std::pair<float, int32_t>>* out);

}  // namespace moe::engine::sampling
